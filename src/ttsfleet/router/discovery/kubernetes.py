"""Discovery in a cluster: TTSPools say which voices a pool serves, EndpointSlices where its pods are.

It also wakes pools that sleep at zero (`wake`: the scale subresource, 0 → 1).

The operator gives each pool a headless Service whose EndpointSlices carry
the pool's label (`ttsfleet.dev/pool`); only endpoints that are ready, on the
port named `grpc`, become addresses. Each kind is listed, then watched from
the list's resource version; an expired version (410 Gone) means list again,
any other error means list again after a bounded backoff. The Kubernetes
client is synchronous, so each watch runs in its own thread and hands the
topology to the event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from ttsfleet.manifests import (
    GROUP,
    GRPC_PORT_NAME,
    POOL_LABEL,
    POOLS,
    VERSION,
    autoscaling_from_manifest,
    pool_default_voice,
)
from ttsfleet.rollouts import CANARY_LABEL, REVISION_LABEL
from ttsfleet.router.discovery import PoolEndpoints, Publish, Topology

log = logging.getLogger(__name__)

WATCH_SECONDS = 300  # the server ends each watch after this; it is then resumed
REQUEST_SECONDS = 30
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 15.0
GONE = 410
UNPROCESSABLE = 422  # a JSON patch whose "test" failed
# Who the API server records as the writer of a woken pool's replicas (GitOps
# tools ignore fields that scalers own by this name: docs/gitops.md).
FIELD_MANAGER = "ttsfleet-router"
# Sets replicas to 1 only if they are 0: atomic, so routers waking the same
# pool at once (or the autoscaler acting meanwhile) never undo each other.
# A Scale's spec omits replicas when they are 0, so "0" reads as an empty spec.
WAKE_PATCH: list[dict[str, Any]] = [
    {"op": "test", "path": "/spec", "value": {}},
    {"op": "add", "path": "/spec/replicas", "value": 1},
]
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

Object = dict[str, Any]


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, else from the pod's service account."""
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return api
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def own_namespace() -> str:
    """The namespace the router runs in ("default" outside a cluster)."""
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    return "default"


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def slice_addresses(endpoint_slice: Mapping[str, Any]) -> set[str]:
    """The ready endpoints of one slice on its gRPC port (no ready condition means ready)."""
    ports = [
        p["port"] for p in endpoint_slice.get("ports") or () if p.get("name") == GRPC_PORT_NAME
    ]
    if not ports or endpoint_slice.get("addressType") not in ("IPv4", "IPv6"):
        return set()
    return {
        _address(ip, ports[0])
        for endpoint in endpoint_slice.get("endpoints") or ()
        if (endpoint.get("conditions") or {}).get("ready") is not False
        for ip in endpoint.get("addresses") or ()
    }


def canary_weights(pool: Mapping[str, Any]) -> dict[str, int]:
    """Revision → share of traffic while the operator runs a canary (`.status.rollout`)."""
    rollout = (pool.get("status") or {}).get("rollout") or {}
    if rollout.get("phase") != "Canary" or not rollout.get("canaryRevision"):
        return {}
    percent = int(rollout.get("canaryPercent", 0))
    return {rollout["stableRevision"]: 100 - percent, rollout["canaryRevision"]: percent}


def topology(
    pools: Iterable[Mapping[str, Any]],
    slices: Iterable[Mapping[str, Any]],
    default_voice: str = "",
) -> Topology:
    """Joins pools and slices by pool name.

    With no default voice given, requests that name none go to the default
    voice of the oldest pool, so adding a pool never changes the default.
    A canary's slices count only while its pool's status says the canary
    runs; their revision label says which share of traffic they get.
    """
    by_age = sorted(
        pools, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
    )
    specs = {pool["metadata"]["name"]: pool.get("spec") or {} for pool in by_age}
    weights = {pool["metadata"]["name"]: canary_weights(pool) for pool in by_age}
    revisions: dict[str, dict[str, str]] = {name: {} for name in specs}
    for endpoint_slice in slices:
        labels = endpoint_slice["metadata"].get("labels") or {}
        pool, revision = labels.get(POOL_LABEL), labels.get(REVISION_LABEL, "")
        if pool not in revisions or (CANARY_LABEL in labels and revision not in weights[pool]):
            continue
        for address in slice_addresses(endpoint_slice):
            revisions[pool][address] = revision
    if not default_voice and specs:
        default_voice = pool_default_voice(next(iter(specs.values())))
    return Topology(
        {
            name: PoolEndpoints(
                name,
                frozenset(spec.get("voices") or ()),
                frozenset(revisions[name]),
                revisions[name],
                weights[name],
                scales_from_zero=autoscaling_from_manifest(
                    spec.get("autoscaling") or {}
                ).scales_from_zero,
            )
            for name, spec in specs.items()
        },
        default_voice,
    )


class _Informer:
    """Mirrors one kind of object in one namespace: list, watch, relist when needed."""

    def __init__(
        self, kind: str, list_objects: Callable[..., Any], on_change: Callable[[], None]
    ) -> None:
        self.kind = kind
        self.objects: dict[str, Object] = {}
        self.synced = False
        self._list = list_objects
        self._on_change = on_change
        self._watch = watch.Watch(return_type="object")  # type: ignore[no-untyped-call]
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]

    def run(self) -> None:
        """Runs in its own thread until `stop`."""
        backoff = FIRST_BACKOFF
        while not self._stopped.is_set():
            try:
                version = self._relist()
                while not self._stopped.is_set():
                    version = self._follow(version)
                    backoff = FIRST_BACKOFF
            except ApiException as error:
                if error.status == GONE:
                    log.info("watch expired; listing again", extra={"kind": self.kind})
                    continue
                self._failed({"status": error.status, "reason": error.reason})
            except Exception as error:  # connection errors: keep the last state, try again
                self._failed({"error": repr(error)})
            self._stopped.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _failed(self, details: dict[str, Any]) -> None:
        if not self._stopped.is_set():  # stopping cuts the watch: not worth a warning
            log.warning("watch failed; listing again", extra={"kind": self.kind, **details})

    def _relist(self) -> str:
        response = self._list(_preload_content=False, _request_timeout=REQUEST_SECONDS)
        listing = json.loads(response.data)
        self.objects = {item["metadata"]["name"]: item for item in listing["items"]}
        self.synced = True
        self._changed()
        return str(listing["metadata"]["resourceVersion"])

    def _follow(self, version: str) -> str:
        """Applies watch events until the server ends the watch; returns where to resume."""
        events = self._watch.stream(  # type: ignore[no-untyped-call]
            self._list,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + REQUEST_SECONDS,
        )
        for event in events:
            kind, item = event["type"], event["raw_object"]
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue  # bookmarks only move the resource version on
            # Copy on write: the other watch thread may be reading the current dict.
            objects = dict(self.objects)
            if kind == "DELETED":
                objects.pop(item["metadata"]["name"], None)
            else:
                objects[item["metadata"]["name"]] = item
            self.objects = objects
            self._changed()
            if self._stopped.is_set():
                break
        return str(self._watch.resource_version or version)

    def _changed(self) -> None:
        if not self._stopped.is_set():
            self._on_change()


class KubernetesDiscovery:
    """Follows the TTSPools and their EndpointSlices in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, default_voice: str = "") -> None:
        self._namespace = namespace
        self._default_voice = default_voice
        self._lock = threading.Lock()
        self._publish: Callable[[Topology], None] = lambda topology: None
        custom = client.CustomObjectsApi(api)
        slices = client.DiscoveryV1Api(api)

        def list_pools(**kwargs: Any) -> Any:
            return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, POOLS, **kwargs)

        def list_slices(**kwargs: Any) -> Any:
            return slices.list_namespaced_endpoint_slice(
                namespace, label_selector=POOL_LABEL, **kwargs
            )

        self._custom = custom
        self._pools = _Informer("TTSPool", list_pools, self._changed)
        self._slices = _Informer("EndpointSlice", list_slices, self._changed)

    def _changed(self) -> None:
        """Called from a watch thread: builds the topology there, publishes it on the loop."""
        with self._lock:
            if not (self._pools.synced and self._slices.synced):
                return
            current = topology(
                self._pools.objects.values(), self._slices.objects.values(), self._default_voice
            )
            self._publish(current)

    async def wake(self, pool: str) -> None:
        """Scales a pool at zero to one replica through its scale subresource.

        The router needs only `patch` on `ttspools/scale` for this: it can
        change a pool's replica count, nothing else of it. A pool that is
        already awake fails the patch's test, which is not an error.
        """
        try:
            await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object_scale,
                GROUP,
                VERSION,
                self._namespace,
                POOLS,
                pool,
                WAKE_PATCH,
                field_manager=FIELD_MANAGER,
                _content_type="application/json-patch+json",
                _request_timeout=REQUEST_SECONDS,
            )
        except ApiException as error:
            if error.status != UNPROCESSABLE:
                raise
            return
        log.info("woke pool: replicas 0 -> 1", extra={"pool": pool})

    async def run(self, publish: Publish) -> None:
        loop = asyncio.get_running_loop()

        def publish_on_loop(topology: Topology) -> None:
            loop.call_soon_threadsafe(publish, topology)

        self._publish = publish_on_loop
        informers = (self._pools, self._slices)
        for informer in informers:
            threading.Thread(
                target=informer.run, name=f"watch {informer.kind}", daemon=True
            ).start()
        try:
            await asyncio.Event().wait()
        finally:
            for informer in informers:
                informer.stop()
