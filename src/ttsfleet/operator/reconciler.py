"""Turning one TTSPool into its owned objects and its status.

Level-based: whatever triggered it (the pool, a voice, an owned object, the
autoscaler's timer, a restart), a reconcile reads the current pool and
voices from kopf's indexes, builds every desired object and applies them
all. Applying unchanged objects changes nothing, so a reconcile that is
interrupted (the operator killed half-way) is simply done again.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf

from ttsfleet.manifests import (
    ManifestError,
    Pool,
    Voice,
    autoscaling_from_manifest,
    pool_from_manifest,
    voice_from_manifest,
)
from ttsfleet.operator.apply import Api, ApiException, error_message
from ttsfleet.operator.canary import (
    CANARY_KINDS,
    DEFAULT_GATE_IMAGE,
    canary_name,
    canary_objects,
    gate_job,
    recorded_voices,
    revision_record,
)
from ttsfleet.operator.drift import differences
from ttsfleet.operator.load import PodInfo
from ttsfleet.operator.objects import (
    CONFIG_HASH_ANNOTATION,
    DEFAULT_FETCHING,
    PoolRef,
    VoiceFetching,
    desired_objects,
    owned_name,
    selector_string,
)
from ttsfleet.operator.rollout import CANARY, Decision, decide
from ttsfleet.operator.state import Plan, PoolKey, PoolState, PoolStates
from ttsfleet.operator.status import Observed, Problem, pool_status
from ttsfleet.operator.voice_status import PENDING, verdict
from ttsfleet.rollouts import VERDICT_ANNOTATION, Rollout, Verdict, pool_revision, rollout_from_spec

logger = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_target(body: Mapping[str, Any]) -> kopf.Body:
    """A pool snapshot from an index as kopf's event functions take it."""
    return kopf.Body(cast(kopf.RawBody, dict(body)))


def _first(index: kopf.Index[PoolKey, Any], key: PoolKey) -> Any:
    store = index.get(key)
    return next(iter(store), None) if store else None


@dataclass(frozen=True)
class Views:
    """kopf's in-memory indexes (handlers receive them as keyword arguments)."""

    pool_index: kopf.Index[PoolKey, Mapping[str, Any]]
    voice_index: kopf.Index[PoolKey, Mapping[str, Any]]
    deployment_index: kopf.Index[PoolKey, Mapping[str, Any]]
    pod_index: kopf.Index[PoolKey, PodInfo]

    def pool(self, key: PoolKey) -> Mapping[str, Any] | None:
        return _first(self.pool_index, key)  # type: ignore[no-any-return]

    def voice(self, key: PoolKey) -> Mapping[str, Any] | None:
        return _first(self.voice_index, key)  # type: ignore[no-any-return]

    def deployment(self, key: PoolKey) -> Mapping[str, Any] | None:
        return _first(self.deployment_index, key)  # type: ignore[no-any-return]

    def pods(self, key: PoolKey) -> list[PodInfo]:
        return list(self.pod_index.get(key) or ())


def _version(body: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """Which incarnation and spec generation of an object this is."""
    if body is None:
        return None
    return body["metadata"]["uid"], body["metadata"].get("generation", 0)


def _transient(error: ApiException) -> bool:
    """Server-side or throttling failures: retry; anything else is the spec's fault."""
    return error.status is None or error.status >= 500 or error.status == 429


class Reconciler:
    def __init__(
        self,
        api: Api,
        states: PoolStates,
        image: str,
        tls_secret: str = "",
        fetching: VoiceFetching = DEFAULT_FETCHING,
        gate_image: str = DEFAULT_GATE_IMAGE,
    ) -> None:
        self._tls_secret = tls_secret
        self._gate_image = gate_image
        self._fetching = fetching
        self._api = api
        self._states = states
        self._image = image

    @staticmethod
    def _voices(body: Mapping[str, Any], views: Views) -> dict[str, Mapping[str, Any] | None]:
        namespace = body["metadata"]["namespace"]
        names = (body.get("spec") or {}).get("voices", [])
        return {n: views.voice((namespace, n)) for n in names}

    def plan(self, body: Mapping[str, Any], views: Views) -> Plan:
        """The pool's desired objects, or why there can be none.

        Built once per version of the pool and its voices (and what each
        voice's check says): every owned object's every event compares
        against it. While a voice's new spec awaits its check, the pool keeps
        the plan it has, so an edited voice rolls the pods only once it
        checked out.
        """
        meta = body["metadata"]
        voices = self._voices(body, views)
        verdicts = {n: verdict(v) for n, v in voices.items()}
        state = self._states[(meta["namespace"], meta["name"])]
        decision = state.decision and (state.decision.stable, state.decision.canary)
        version = (
            _version(body),
            decision,
            *((n, _version(v), verdicts[n]) for n, v in voices.items()),
        )
        if state.plan is not None and PENDING in verdicts.values():
            return state.plan[1]
        if state.plan is None or state.plan[0] != version:
            state.plan = (version, self._build(body, voices))
        return state.plan[1]

    def _build(
        self, body: Mapping[str, Any], voices: Mapping[str, Mapping[str, Any] | None]
    ) -> Plan:
        resolved = _resolve(body, voices)
        if isinstance(resolved, Problem):
            return resolved
        pool, current, rollout = resolved
        ref = PoolRef.of(body)
        state = self._states[(ref.namespace, ref.name)]
        decision = state.decision
        settings = (self._image, self._tls_secret, self._fetching)
        if decision is None:  # a new pool whose voices await their check
            return desired_objects(ref, pool, current, *settings, revision=pool_revision(current))
        stable = state.revisions.get(decision.stable, current)
        plan = desired_objects(ref, pool, stable, *settings, revision=decision.stable)
        if decision.canary and rollout:
            canary = desired_objects(ref, pool, current, *settings, revision=decision.canary)
            plan += canary_objects(ref, canary, decision.canary, rollout.canary_replicas)
        return plan

    async def _decide(self, body: Mapping[str, Any], views: Views, state: PoolState) -> bool:
        """Records the voices' revision and decides the rollout's next step (state.decision).

        Only voices whose files checked out make a new decision: while a check
        is pending the pods stay at the revision decided last (or, after a
        restart, the stable one the status names). Returns whether it decided.
        """
        manifests = self._voices(body, views)
        resolved = _resolve(body, manifests)
        if isinstance(resolved, Problem):
            return False  # the plan says why
        _, voices, rollout = resolved
        ref = PoolRef.of(body)
        current = pool_revision(voices)
        if current not in state.revisions:
            generation = body["metadata"].get("generation", 1)
            await self._api.apply(revision_record(ref, current, voices, generation))
            state.revisions[current] = voices
        previous = _previous_rollout(body, state)
        stable = str(previous.get("stableRevision") or "")
        if stable and stable not in state.revisions:
            record = await self._api.read(
                revision_record(ref, stable, [], 0)  # only its name is read
            )
            if record is not None:
                try:
                    state.revisions[stable] = recorded_voices(record)
                except ManifestError as error:
                    logger.warning("%s/%s: %s", ref.namespace, ref.name, error)
        if PENDING in (verdict(v) for v in manifests.values()):
            if state.decision is None:
                held = stable if stable in state.revisions else current
                state.decision = Decision(held, None, dict(previous)) if previous else None
            return False
        judged = _verdict(body)
        if current in state.gate_failures and (judged is None or judged.revision != current):
            judged = Verdict(current, False, (state.gate_failures[current],))
        state.decision = decide(
            current, rollout, previous, judged, stable in state.revisions, now_iso()
        )
        return True

    async def reconcile(self, views: Views, key: PoolKey) -> None:
        """Apply everything the pool owns, then its status."""
        if views.pool(key) is None:
            return  # deleted meanwhile: keep no state for it
        state = self._states[key]
        async with state.lock:
            body = views.pool(key)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return
            state.needs_reconcile = True  # until this completes: the timer retries
            state.verdict_seen = _verdict_text(body)
            previous = _previous_rollout(body, state)
            decided = await self._decide(body, views, state)
            plan = self.plan(body, views)
            deployment = None
            if isinstance(plan, Problem):
                problem: Problem | None = plan
            else:
                problem, deployment = await self._apply(plan)
                config_map = next(m for m in plan if m["kind"] == "ConfigMap")
                state.config_hash = config_map["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
                if problem is None and decided:
                    await self._roll(body, state, previous)
            _announce(body, state.problem, problem)
            state.problem = problem
            state.observed_generation = body["metadata"]["generation"]
            outcome = problem.reason if problem else "applied"
            logger.info(
                "%s/%s: reconciled generation %d: %s", *key, state.observed_generation, outcome
            )
            state.needs_reconcile = False
            await self._publish(views, key, state, deployment)

    async def _roll(
        self, body: Mapping[str, Any], state: PoolState, previous: Mapping[str, Any]
    ) -> None:
        """Starts the canary's gate, or removes a decided canary; tells people what was decided."""
        decision = state.decision
        if decision is None:
            return
        ref = PoolRef.of(body)
        rollout = rollout_from_spec(body.get("spec") or {}, f"TTSPool {ref.name}")
        if decision.canary and rollout:
            job = gate_job(ref, rollout, decision.canary, self._gate_image, self._tls_secret)
            await self._api.create_job(job)
        elif previous.get("phase") == CANARY:
            for kind in CANARY_KINDS:
                await self._api.delete(kind, ref.namespace, canary_name(ref.name))
        said = decision.announcement
        if said is not None:
            logger.info("%s/%s: %s: %s", ref.namespace, ref.name, said.reason, said.message)
            notify = kopf.warn if said.warning else kopf.info
            notify(event_target(body), reason=said.reason, message=said.message)

    async def _apply(
        self, plan: list[dict[str, Any]]
    ) -> tuple[Problem | None, Mapping[str, Any] | None]:
        """Apply in order; a rejected object is a Problem, a transient failure raises."""
        deployment = None
        for manifest in plan:
            try:
                applied = await self._api.apply(manifest)
            except ApiException as error:
                if _transient(error):
                    raise
                what = f"{manifest['kind']} {manifest['metadata']['name']}"
                return Problem("ApplyFailed", f"{what}: {error_message(error)}"), None
            if manifest["kind"] == "Deployment":
                deployment = applied
        return None, deployment

    async def correct(
        self, views: Views, key: PoolKey, event: str | None, live: Mapping[str, Any]
    ) -> None:
        """An owned object changed: re-apply if it drifted or vanished, else refresh status."""
        body = views.pool(key)
        if body is None:
            return  # the pool is gone; so will its objects be
        plan = self.plan(body, views)
        if isinstance(plan, Problem):
            return  # nothing to compare with (the pool's status says why)
        named = (live.get("kind"), (live.get("metadata") or {}).get("name"))
        desired = next((m for m in plan if (m["kind"], m["metadata"]["name"]) == named), None)
        if desired is None:
            return  # a decided canary's object, on its way out
        if event == "DELETED" or differences(desired, live):
            # Events queue up behind a correction; only the object as it is now counts.
            current = await self._api.read(desired)
            drift = ["deleted"] if current is None else differences(desired, current)
            if drift:
                await self._correct(views, key, body, desired, drift)
                return
        if desired["kind"] == "Deployment":
            await self.publish_status(views, key)

    async def _correct(
        self,
        views: Views,
        key: PoolKey,
        body: Mapping[str, Any],
        desired: Mapping[str, Any],
        drift: list[str],
    ) -> None:
        what = f"{desired['kind']} {desired['metadata']['name']}"
        message = f"{what} changed outside the pool ({', '.join(drift[:5])}); re-applied"
        logger.info("%s/%s: %s", *key, message)
        kopf.info(event_target(body), reason="DriftCorrected", message=message)
        await self.reconcile(views, key)

    async def publish_status(self, views: Views, key: PoolKey) -> None:
        if views.pool(key) is None:
            return  # deleted meanwhile: keep no state for it
        state = self._states[key]
        async with state.lock:
            await self._publish(views, key, state)

    async def _publish(
        self,
        views: Views,
        key: PoolKey,
        state: PoolState,
        deployment: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the status if it changed (the caller holds the pool's lock)."""
        body = views.pool(key)
        if body is None:
            return
        name = body["metadata"]["name"]
        spec = body.get("spec") or {}
        observed = Observed(
            desired=int(spec.get("replicas", 1)),
            selector=selector_string(name),
            service=owned_name(name),
            deployment=deployment or views.deployment(key),
            problem=state.problem,
            load=state.load,
            config_hash=state.config_hash,
            rollout=_previous_rollout(body, state),  # kept as stored until a reconcile decides
            last_scale_time=state.last_scale_time,
            sleeps=autoscaling_from_manifest(spec.get("autoscaling") or {}).scales_from_zero,
        )
        previous = state.last_status or body.get("status") or {}
        generation = state.observed_generation
        if generation is None:
            generation = previous.get("observedGeneration", 0)
        status = pool_status(observed, previous, observed_generation=generation, now=now_iso())
        if status == previous:
            return
        await self._api.apply_status(key[0], name, status)
        state.last_status = status


def _resolve(
    body: Mapping[str, Any], voices: Mapping[str, Mapping[str, Any] | None]
) -> tuple[Pool, list[Voice], Rollout | None] | Problem:
    """The pool, its voices as specified now and its rollout settings, or why not."""
    namespace = body["metadata"]["namespace"]
    try:
        pool = pool_from_manifest(body)
        rollout = rollout_from_spec(pool.raw_spec, f"TTSPool {pool.name}")
    except ManifestError as error:
        return Problem("InvalidSpec", str(error))
    missing = [name for name, voice in voices.items() if voice is None]
    if missing:
        return Problem(
            "VoiceMissing",
            f"no TTSVoice named {', '.join(missing)} in namespace {namespace}",
        )
    try:
        resolved = [voice_from_manifest(voices[v] or {}) for v in pool.voices]
    except ManifestError as error:
        return Problem("InvalidVoice", str(error))
    # A voice whose files failed their check would only fail in the pods:
    # keep the pods as they are and say why.
    degraded = [(n, m) for n, v in voices.items() if (m := verdict(v)) not in (None, PENDING)]
    if degraded:
        return Problem(
            "VoiceDegraded",
            "; ".join(f"TTSVoice {n} is Degraded ({m})" for n, m in degraded),
        )
    return pool, resolved, rollout


def _previous_rollout(body: Mapping[str, Any], state: PoolState) -> Mapping[str, Any]:
    """The rollout as last decided: in memory, else as the pool's status says (a restart)."""
    if state.decision is not None:
        return state.decision.status
    return (body.get("status") or {}).get("rollout") or {}


def _verdict_text(body: Mapping[str, Any]) -> str | None:
    return ((body["metadata"].get("annotations")) or {}).get(VERDICT_ANNOTATION)


def _verdict(body: Mapping[str, Any]) -> Verdict | None:
    text = _verdict_text(body)
    if text is None:
        return None
    try:
        return Verdict.from_json(text)
    except ManifestError as error:
        logger.warning("%s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"], error)
        return None


def _announce(body: Mapping[str, Any], before: Problem | None, after: Problem | None) -> None:
    """One Event per change of problem, not per reconcile."""
    if after is not None and after != before:
        logger.warning("%s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"], after)
        kopf.warn(event_target(body), reason=after.reason, message=after.message)
    elif after is None and before is not None:
        kopf.info(event_target(body), reason="Recovered", message=f"no longer {before.reason}")
