"""Writes to the API: server-side apply under one field manager, and scaling.

Every object the operator owns, and every pool status, is written by
server-side apply as ``ttsfleet-operator`` with force, so the operator
re-takes any field someone else changed, and never touches fields it does
not set (other controllers' and users' additions survive).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kubernetes.aio import client

from ttsfleet.manifests import GROUP, POOLS, VERSION, VOICES

FIELD_MANAGER = "ttsfleet-operator"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"

ApiException = client.ApiException


def error_message(error: ApiException) -> str:
    """The API server's own message (the Status body), else the HTTP reason."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


class Api:
    """The operator's API calls, through one ``kubernetes.aio`` ApiClient."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
        batch = client.BatchV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._core = core
        # Per owned kind: (read, patch, delete); only a canary's objects are ever deleted.
        self._kinds: dict[str, tuple[Callable[..., Awaitable[Any]], ...]] = {
            "ConfigMap": (
                core.read_namespaced_config_map,
                core.patch_namespaced_config_map,
                core.delete_namespaced_config_map,
            ),
            "Service": (
                core.read_namespaced_service,
                core.patch_namespaced_service,
                core.delete_namespaced_service,
            ),
            "Deployment": (
                apps.read_namespaced_deployment,
                apps.patch_namespaced_deployment,
                apps.delete_namespaced_deployment,
            ),
            "PodDisruptionBudget": (
                policy.read_namespaced_pod_disruption_budget,
                policy.patch_namespaced_pod_disruption_budget,
            ),
            "ControllerRevision": (
                apps.read_namespaced_controller_revision,
                apps.patch_namespaced_controller_revision,
            ),
        }
        self._create_job = batch.create_namespaced_job

    def _plain(self, model: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return result

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply one owned object; return it as the server now has it."""
        meta = manifest["metadata"]
        patch = self._kinds[manifest["kind"]][1]
        applied = await patch(
            name=meta["name"],
            namespace=meta["namespace"],
            body=manifest,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
        )
        return self._plain(applied)

    async def read(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object a manifest describes, as the server has it now (None if absent)."""
        meta = manifest["metadata"]
        read = self._kinds[manifest["kind"]][0]
        try:
            return self._plain(await read(name=meta["name"], namespace=meta["namespace"]))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete an object (a decided canary's), if it is still there."""
        try:
            await self._kinds[kind][2](name=name, namespace=namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    async def create_job(self, manifest: Mapping[str, Any]) -> None:
        """Create a Job unless one of its name exists (a Job's pod template cannot change)."""
        try:
            body: Any = dict(manifest)  # the client sends a dict as it is
            await self._create_job(manifest["metadata"]["namespace"], body)
        except ApiException as error:
            if error.status != 409:
                raise

    async def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Apply a pool's whole status (always the full set: omitted fields are dropped)."""
        await self._custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            POOLS,
            name,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TTSPool",
                "metadata": {"name": name, "namespace": namespace},
                "status": status,
            },
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
        )

    async def patch_voice_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge fields into a voice's status (the voice check writes the rest through kopf)."""
        await self._custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            VOICES,
            name,
            {"status": status},
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
        )

    async def read_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data (a voice source's CA), None if there is no such ConfigMap."""
        try:
            found = await self._core.read_namespaced_config_map(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found.data or {})

    async def create_peering(self, name: str, namespace: str | None) -> None:
        """Create kopf's peering object (cluster-wide, or in a namespace) unless it exists."""
        kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
        body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
        try:
            if namespace is None:
                await self._custom.create_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", body
                )
            else:
                await self._custom.create_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", body
                )
        except ApiException as error:
            if error.status != 409:
                raise

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        """Set a pool's replicas through its scale subresource, as HPA would."""
        await self._custom.patch_namespaced_custom_object_scale(
            GROUP,
            VERSION,
            namespace,
            POOLS,
            name,
            {"spec": {"replicas": replicas}},
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
        )
