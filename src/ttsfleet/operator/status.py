"""A TTSPool's status, computed from what is observed (pure).

Honest by construction: Ready comes only from the Deployment's own status
(pods the kubelet reports ready, of the current template, all old pods
gone), never from what the operator has merely asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ttsfleet.operator.autoscale_policy import LoadSample

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"


@dataclass(frozen=True)
class Problem:
    """Why the operator cannot make the pool what its spec asks (Degraded)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything the status is computed from."""

    desired: int
    selector: str
    service: str
    deployment: Mapping[str, Any] | None = None
    problem: Problem | None = None
    load: LoadSample | None = None
    config_hash: str | None = None
    last_scale_time: str | None = None
    rollout: Mapping[str, Any] | None = None  # .status.rollout (operator/rollout.py)
    # The pool may sleep at zero (autoscaling.minReplicas 0): at zero it is asleep, not off.
    sleeps: bool = False


def _condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def _deployment_condition(deployment: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def _rollout(obs: Observed, deployment: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the rollout is complete (as `kubectl rollout status` judges), and a summary."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    complete = (
        status.get("observedGeneration", 0) >= generation
        and updated >= obs.desired
        and total <= updated
        and available >= updated
    )
    old = max(total - updated, 0)
    summary = f"{updated}/{obs.desired} updated, {available} available"
    return complete, summary + (f", {old} old pods terminating" if old else "")


def conditions(obs: Observed) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded, without transition times."""
    deployment = obs.deployment
    if deployment is None:
        reason = obs.problem.reason if obs.problem else "Creating"
        message = obs.problem.message if obs.problem else "the Deployment is being created"
        return [
            _condition(READY, False, reason, message),
            _condition(PROGRESSING, obs.problem is None, reason, message),
            _degraded(obs.problem),
        ]
    ready = (deployment.get("status") or {}).get("readyReplicas", 0)
    complete, summary = _rollout(obs, deployment)
    stuck = _deployment_condition(deployment, "Progressing").get("reason") == (
        "ProgressDeadlineExceeded"
    )
    failure = _deployment_condition(deployment, "ReplicaFailure")
    problem = obs.problem
    if problem is None and failure.get("status") == "True":
        problem = Problem("ReplicaFailure", failure.get("message", "pods cannot be created"))
    if problem is None and stuck and not complete:
        problem = Problem("RolloutStuck", f"the rollout exceeded its deadline: {summary}")

    counted = f"{ready}/{obs.desired} replicas ready"
    if obs.desired == 0:
        asleep = "the pool sleeps at zero replicas; its next request wakes it"
        message = asleep if obs.sleeps else "the pool has no replicas"
        ready_condition = _condition(READY, False, "ScaledToZero", message)
    elif complete and ready >= obs.desired:
        ready_condition = _condition(READY, True, "ReplicasReady", counted)
    else:
        ready_condition = _condition(READY, False, "ReplicasNotReady", counted)
    if complete:
        progressing = _condition(PROGRESSING, False, "RolloutComplete", summary)
    elif stuck:
        progressing = _condition(PROGRESSING, False, "ProgressDeadlineExceeded", summary)
    else:
        progressing = _condition(PROGRESSING, True, "RollingOut", summary)
    return [ready_condition, progressing, _degraded(problem)]


def _degraded(problem: Problem | None) -> dict[str, Any]:
    if problem is None:
        return _condition(DEGRADED, False, "AsExpected", "the pool is reconciled as specified")
    return _condition(DEGRADED, True, problem.reason, problem.message)


def merge_conditions(
    previous: Iterable[Mapping[str, Any]],
    current: Iterable[Mapping[str, Any]],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Stamp conditions; lastTransitionTime moves only when a status flips."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for condition in current:
        old = before.get(condition["type"], {})
        same = old.get("status") == condition["status"] and old.get("lastTransitionTime")
        merged.append(
            {
                **condition,
                "observedGeneration": generation,
                "lastTransitionTime": old["lastTransitionTime"] if same else now,
            }
        )
    return merged


def pool_status(
    obs: Observed, previous: Mapping[str, Any], *, observed_generation: int, now: str
) -> dict[str, Any]:
    """The full status to apply; ``previous`` is the status currently stored."""
    deployment_status = (obs.deployment or {}).get("status") or {}
    status: dict[str, Any] = {
        "observedGeneration": observed_generation,
        "replicas": deployment_status.get("replicas", 0),
        "readyReplicas": deployment_status.get("readyReplicas", 0),
        "updatedReplicas": deployment_status.get("updatedReplicas", 0),
        "selector": obs.selector,
        "service": obs.service,
        "conditions": merge_conditions(
            previous.get("conditions") or [],
            conditions(obs),
            generation=observed_generation,
            now=now,
        ),
    }
    if obs.load is not None:
        status["queueDepth"] = obs.load.queue_depth
        status["inFlight"] = obs.load.in_flight
        status["queuedAudioSeconds"] = round(obs.load.queued_audio_seconds, 2)
        status["reportingReplicas"] = obs.load.reporting_pods
    if obs.config_hash:
        status["configHash"] = obs.config_hash
    if obs.last_scale_time:
        status["lastScaleTime"] = obs.last_scale_time
    if obs.rollout:
        status["rollout"] = dict(obs.rollout)
    return status
