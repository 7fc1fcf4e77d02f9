"""How many replicas a pool should have, given the work queued at its pods.

A pure function over a snapshot, so every rule is unit-tested without a
cluster (tests/operator/test_autoscale_policy.py). The rules follow the
HorizontalPodAutoscaler's, applied to queued audio seconds (work, not a
request count: pods predict each request's length before queueing it):

- want ``ceil(total queued audio seconds / target per replica)`` pods,
  within ``[minReplicas, maxReplicas]``; ignore changes within a 10% tolerance;
- scale up at once, by at most doubling (or +4) per decision;
- scale down only to the highest count recommended during the
  stabilization window, so a short lull never removes pods;
- missing load is not zero load: with no reports nothing changes, and a
  ready pod that did not report counts as exactly on target, so its silence
  can neither cause nor block a scale-up but does hold back a scale-down;
- a pool at zero has no pods to report, so nothing here wakes it: the
  router does (scale subresource 0 -> 1) when a request arrives. A rise in
  replicas made outside the policy (that wake-up, kubectl scale) counts as
  a recommendation at that moment, so the new pod stays a full window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from ttsfleet.manifests import Autoscaling

TOLERANCE = 0.1
MAX_UP_FACTOR = 2
MAX_UP_STEP = 4


@dataclass(frozen=True)
class LoadSample:
    """The pool's load at one moment, as read from its ready pods."""

    ready_pods: int
    reporting_pods: int
    queue_depth: int
    in_flight: int = 0
    # Seconds of audio accepted and not yet spoken: the demand scaled on.
    queued_audio_seconds: float = 0.0


@dataclass(frozen=True)
class Recommendation:
    """A replica count the policy wanted at ``at`` (seconds, monotonic)."""

    at: float
    replicas: int


class Action(Enum):
    HOLD = "Hold"
    SCALE_UP = "ScaledUp"
    SCALE_DOWN = "ScaledDown"


@dataclass(frozen=True)
class Decision:
    """What to do now, why, and the history to pass to the next call."""

    replicas: int
    action: Action
    message: str
    history: tuple[Recommendation, ...]


def decide(
    *,
    current: int,
    sample: LoadSample | None,
    spec: Autoscaling,
    history: tuple[Recommendation, ...],
    now: float,
    previous: int | None = None,
) -> Decision:
    """The replica count for a pool that has ``current`` replicas now.

    An empty ``history`` (a new pool, or an operator that just started)
    counts as "``current`` was recommended just now", so a restart never
    triggers a scale-down before a full stabilization window has passed.
    ``previous`` is the count at the last decision: when ``current`` is
    higher, someone scaled up since (the router woke the pool), and that
    counts as recommended just now too.
    """
    low, high = spec.min_replicas, max(spec.min_replicas, spec.max_replicas)
    window = spec.scale_down_stabilization_seconds
    if not history or (previous is not None and current > previous):
        history = (*history, Recommendation(now, current))
    if current < low or current > high:
        bounded = min(max(current, low), high)
        return _change(current, bounded, f"outside [{low}, {high}]", history, now, window)
    if sample is None or sample.reporting_pods == 0:
        return Decision(current, Action.HOLD, "no load reports", _prune(history, now, window))

    target = spec.target_queued_audio_seconds
    wanted = _wanted(sample, target, current)
    recommendation = min(max(wanted, low), high)
    history = _prune((*history, Recommendation(now, recommendation)), now, window)
    why = (
        f"{sample.queued_audio_seconds:.1f} s of audio queued on "
        f"{sample.reporting_pods}/{sample.ready_pods} reporting pods, "
        f"target {target:g} s per replica"
    )
    if recommendation > current:
        step = max(current * MAX_UP_FACTOR, current + MAX_UP_STEP)
        return _change(current, min(recommendation, step), why, history, now, window)
    stabilized = max(r.replicas for r in history)
    if stabilized < current:
        return _change(current, stabilized, why, history, now, window)
    return Decision(current, Action.HOLD, why, history)


def _wanted(sample: LoadSample, target: float, current: int) -> int:
    """Replicas for the queued work; silent ready pods count as on target."""
    queued = sample.queued_audio_seconds
    silent = max(sample.ready_pods - sample.reporting_pods, 0)
    up = math.ceil(queued / target)
    down = math.ceil((queued + silent * target) / target)
    if current and abs(queued / target / current - 1) <= TOLERANCE:
        return current
    return up if up > current else down


def _prune(
    history: tuple[Recommendation, ...], now: float, window: float
) -> tuple[Recommendation, ...]:
    """Drop recommendations older than the window, keeping at least the newest."""
    kept = tuple(r for r in history if now - r.at <= window)
    return kept or history[-1:]


def _change(
    current: int,
    replicas: int,
    why: str,
    history: tuple[Recommendation, ...],
    now: float,
    window: float,
) -> Decision:
    if replicas == current:
        return Decision(current, Action.HOLD, why, _prune(history, now, window))
    action = Action.SCALE_UP if replicas > current else Action.SCALE_DOWN
    # What was decided is remembered too, so a later lull must last a full window.
    history = _prune((*history, Recommendation(now, replicas)), now, window)
    return Decision(replicas, action, f"{current} -> {replicas} replicas: {why}", history)
