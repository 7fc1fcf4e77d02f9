"""The server's view of Kubernetes: reads of one namespace, and the one bounded scale.

Every request carries the tool call's correlation id (``x-request-id`` and
``x-correlation-id`` headers), so an apiserver audit log can be joined with
ours. Objects come back as plain camelCase dicts, the shape `kubectl get -o
json` shows and the pure functions in ``tools`` read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from kubernetes.aio import client, config

from ttsfleet.manifests import GROUP, POOL_LABEL, POOLS, VERSION, VOICES
from ttsfleet.wire import REQUEST_ID_KEY

CORRELATION_ID_KEY = "x-correlation-id"
REQUEST_SECONDS = 15

Object = dict[str, Any]


def correlation_headers(correlation_id: str) -> dict[str, str]:
    return {REQUEST_ID_KEY: correlation_id, CORRELATION_ID_KEY: correlation_id}


async def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, else from the pod's ServiceAccount."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Fleet:
    """One namespace's TTSPools, TTSVoices, and the pools' pods and Deployments."""

    pools: list[Object]
    voices: list[Object]
    pods: list[Object]
    deployments: list[Object]


class Kube:
    """Reads (get/list) in one namespace, plus patching a pool's scale subresource."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._api = api
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    def _options(self, correlation_id: str) -> dict[str, Any]:
        return {
            "_headers": correlation_headers(correlation_id),
            "_request_timeout": REQUEST_SECONDS,
        }

    def _plain(self, listed: Any) -> list[Object]:
        items: list[Object] = self._api.sanitize_for_serialization(listed.items)  # type: ignore[no-untyped-call]
        return items

    async def _custom_list(self, plural: str, correlation_id: str) -> list[Object]:
        listed = await self._custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, **self._options(correlation_id)
        )
        return cast(list[Object], cast(Object, listed)["items"])

    async def fleet(self, correlation_id: str, pool: str = "") -> Fleet:
        """The namespace's fleet; with ``pool``, only that pool's pods and Deployments."""
        options = self._options(correlation_id)
        selector = f"{POOL_LABEL}={pool}" if pool else POOL_LABEL
        pools, voices, pods, deployments = await asyncio.gather(
            self._custom_list(POOLS, correlation_id),
            self._custom_list(VOICES, correlation_id),
            self._core.list_namespaced_pod(self.namespace, label_selector=selector, **options),
            self._apps.list_namespaced_deployment(
                self.namespace, label_selector=selector, **options
            ),
        )
        return Fleet(pools, voices, self._plain(pods), self._plain(deployments))

    async def events(self, correlation_id: str) -> list[Object]:
        listed = await self._core.list_namespaced_event(
            self.namespace, **self._options(correlation_id)
        )
        return self._plain(listed)

    async def scale(self, pool: str, replicas: int, correlation_id: str) -> Object:
        """Sets a pool's replicas through its scale subresource (what `kubectl scale` does)."""
        result = await self._custom.patch_namespaced_custom_object_scale(
            GROUP,
            VERSION,
            self.namespace,
            POOLS,
            pool,
            {"spec": {"replicas": replicas}},
            **self._options(correlation_id),
        )
        return cast(Object, result)
