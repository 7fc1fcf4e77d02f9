"""The kopf handlers: which watch events lead to which reconciler calls.

Indexes keep pools, voices, Deployments and pods in memory, so deciding
anything costs no API reads. Only ``kopf.on.event`` handlers and a timer are
used for pools, not kopf's create/update change detection, so every trigger
takes the same level-based path and the operator writes no bookkeeping
annotations onto users' objects. The one thing kopf adds to a pool is a
finalizer (for the timer), so a pool is deleted only once its timer has
stopped.

A voice's check is the exception: it is a job done once per spec change,
with retries and backoff when a source is briefly unreachable, which is what
kopf's change handlers are for. Their state lives in the voice's
status.kopf (see main.settings), not in annotations.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf

from ttsfleet.manifests import GROUP, POOL_LABEL, POOLS, VERSION, VOICES
from ttsfleet.operator.apply import Api
from ttsfleet.operator.autoscaler import Autoscaler
from ttsfleet.operator.load import PodInfo
from ttsfleet.operator.objects import MANAGED_BY, MANAGED_BY_LABEL
from ttsfleet.operator.reconciler import Reconciler, Views
from ttsfleet.operator.state import PoolKey, PoolStates
from ttsfleet.operator.voice_status import verdict
from ttsfleet.operator.voices import VOICE_CHECK, VoiceChecker
from ttsfleet.rollouts import CANARY_LABEL, VERDICT_ANNOTATION

# Resources the operator owns (plus their pods): watched with a server-side
# label selector, so the operator never streams other ConfigMaps or pods.
OWNED = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("policy", "v1", "poddisruptionbudgets"),
)
WATCHED_BY_LABEL = (*OWNED, ("", "v1", "pods"))
OWNED_LABELS = {MANAGED_BY_LABEL: MANAGED_BY}
OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# A pool's own Deployment and pods; a canary's count neither for status nor for scaling.
STABLE_LABELS: dict[str, Any] = {
    **OWNED_LABELS,
    POOL_LABEL: kopf.PRESENT,
    CANARY_LABEL: kopf.ABSENT,
}


def _key(meta: kopf.Meta) -> PoolKey:
    return (meta["namespace"], meta["name"])


def _owner_key(meta: kopf.Meta) -> PoolKey:
    """The pool an owned object or pod belongs to, by its label."""
    return (meta["namespace"], meta.labels[POOL_LABEL])


def _snapshot(body: kopf.Body) -> dict[str, Any]:
    """A detached copy of a pool or voice for the index, without managedFields."""
    raw = copy.deepcopy(dict(body))
    raw["metadata"] = {k: v for k, v in raw["metadata"].items() if k != "managedFields"}
    return raw


def _views(indexes: Mapping[str, Any]) -> Views:
    return Views(
        pool_index=indexes["pool_index"],
        voice_index=indexes["voice_index"],
        deployment_index=indexes["deployment_index"],
        pod_index=indexes["pod_index"],
    )


def register(
    registry: kopf.OperatorRegistry,
    *,
    states: PoolStates,
    reconciler: Reconciler,
    autoscaler: Autoscaler,
    voice_checker: VoiceChecker,
    interval: float,
) -> None:
    """Register every handler of the operator in ``registry``."""

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster ServiceAccount or KUBECONFIG, as the kubernetes client finds them."""
        return kopf.login_via_client(**kwargs)

    @kopf.index(GROUP, VERSION, POOLS, id="pool_index", registry=registry)
    def pool_index(*, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[PoolKey, Any]:
        return {_key(meta): _snapshot(body)}

    @kopf.index(GROUP, VERSION, POOLS, id="voice_users", registry=registry)
    def voice_users(*, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[PoolKey, str]:
        """Which pools serve a voice, so a voice change reaches them."""
        namespace, name = _key(meta)
        return {(namespace, voice): name for voice in spec.get("voices") or []}

    @kopf.index(GROUP, VERSION, VOICES, id="voice_index", registry=registry)
    def voice_index(*, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[PoolKey, Any]:
        return {_key(meta): _snapshot(body)}

    @kopf.index(
        "apps", "v1", "deployments", labels=STABLE_LABELS, id="deployment_index", registry=registry
    )
    def deployment_index(*, meta: kopf.Meta, status: kopf.Status, **_: Any) -> dict[PoolKey, Any]:
        """Just what the pool's status needs from its Deployment."""
        summary = {"metadata": {"generation": meta.get("generation")}, "status": dict(status)}
        return {_owner_key(meta): copy.deepcopy(summary)}

    @kopf.index("", "v1", "pods", labels=STABLE_LABELS, id="pod_index", registry=registry)
    def pod_index(*, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[PoolKey, PodInfo]:
        return {_owner_key(meta): PodInfo.of(body)}

    @kopf.on.event(GROUP, VERSION, POOLS, id="pool_changed", registry=registry)
    async def pool_changed(*, type: str | None, meta: kopf.Meta, **kwargs: Any) -> None:
        """At start-up, on every spec change (a new generation) and on a new gate verdict."""
        key = _key(meta)
        if type == "DELETED":
            states.forget(key)  # the owned objects go with the pool (owner references)
        elif (
            type is None
            or meta.get("generation") != states[key].observed_generation
            or meta.annotations.get(VERDICT_ANNOTATION) != states[key].verdict_seen
        ):
            await reconciler.reconcile(_views(kwargs), key)
        if type is not None:
            await voice_checker.refresh_pools(key[0], kwargs["voice_index"], kwargs["voice_users"])

    voice_versions: dict[PoolKey, tuple[int | None, str | None]] = {}

    @kopf.on.event(GROUP, VERSION, VOICES, id="voice_changed", registry=registry)
    async def voice_changed(
        *, type: str | None, meta: kopf.Meta, body: kopf.Body, **kwargs: Any
    ) -> None:
        """A voice appeared, went, or its check said something new: reconcile every pool serving it.

        Other status changes (the check's retries, the voice's pools) change no pool.
        """
        key = _key(meta)
        version = (None, None) if type == "DELETED" else (meta.get("generation"), verdict(body))
        changed = voice_versions.get(key) != version
        voice_versions[key] = version
        if type is None or not changed:
            return  # at start-up every pool reconciles anyway
        users: kopf.Index[PoolKey, str] = kwargs["voice_users"]
        for pool in list(users.get(key) or ()):
            await reconciler.reconcile(_views(kwargs), (key[0], pool))

    @kopf.on.resume(GROUP, VERSION, VOICES, field="spec", **VOICE_CHECK, registry=registry)
    @kopf.on.create(GROUP, VERSION, VOICES, field="spec", **VOICE_CHECK, registry=registry)
    @kopf.on.update(GROUP, VERSION, VOICES, field="spec", **VOICE_CHECK, registry=registry)
    async def voice_check(*, body: kopf.Body, reason: str, retry: int, **kwargs: Any) -> None:
        """Fetch and check the voice once per spec change; Degraded with the reason if bad."""
        await voice_checker.run(body, reason, retry, kwargs["voice_users"])

    async def owned_changed(
        *, type: str | None, meta: kopf.Meta, body: kopf.Body, **kwargs: Any
    ) -> None:
        """Someone edited or deleted an owned object, or a Deployment's status moved."""
        if type is not None and POOL_LABEL in meta.labels:
            await reconciler.correct(_views(kwargs), _owner_key(meta), type, body)

    for group, version, plural in OWNED:
        kopf.on.event(
            group,
            version,
            plural,
            id=f"owned-{plural}",
            labels=OWNED_LABELS,
            registry=registry,
        )(owned_changed)

    @kopf.timer(GROUP, VERSION, POOLS, interval=interval, id="autoscale", registry=registry)
    async def autoscale(*, meta: kopf.Meta, body: kopf.Body, **kwargs: Any) -> None:
        """Every interval: read load, scale if enabled, refresh the status."""
        await autoscaler.tick(_views(kwargs), _key(meta), body)


def register_peering(
    registry: kopf.OperatorRegistry, api: Api, name: str, namespaces: list[str]
) -> None:
    """Create the peering object at start-up: kopf needs it to exist to see the replicas."""

    @kopf.on.startup(id="create_peering", registry=registry)
    async def create_peering(**_: Any) -> None:
        targets: list[str | None] = [*namespaces] or [None]
        for namespace in targets:
            await api.create_peering(name, namespace)
