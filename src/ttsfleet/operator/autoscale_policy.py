"""How many replicas a pool should have, given its pods' queue depth.

A pure function over a snapshot, so every rule is unit-tested without a
cluster (tests/unit/test_autoscale_policy.py). The rules follow the
HorizontalPodAutoscaler's, applied to queue depth:

- want ``ceil(total queue depth / target per replica)`` pods, within
  ``[minReplicas, maxReplicas]``; ignore changes within a 10% tolerance;
- scale up at once, by at most doubling (or +4) per decision;
- scale down only to the highest count recommended during the
  stabilization window, so a short lull never removes pods;
- missing load is not zero load: with no reports nothing changes, and a
  ready pod that did not report counts as exactly on target, so its silence
  can neither cause nor block a scale-up but does hold back a scale-down.
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
) -> Decision:
    """The replica count for a pool that has ``current`` replicas now.

    An empty ``history`` (a new pool, or an operator that just started)
    counts as "``current`` was recommended just now", so a restart never
    triggers a scale-down before a full stabilization window has passed.
    """
    low, high = spec.min_replicas, max(spec.min_replicas, spec.max_replicas)
    window = spec.scale_down_stabilization_seconds
    if not history:
        history = (Recommendation(now, current),)
    if current < low or current > high:
        bounded = min(max(current, low), high)
        return _change(current, bounded, f"outside [{low}, {high}]", history, now, window)
    if sample is None or sample.reporting_pods == 0:
        return Decision(current, Action.HOLD, "no load reports", _prune(history, now, window))

    wanted = _wanted(sample, spec.target_queue_depth, current)
    recommendation = min(max(wanted, low), high)
    history = _prune((*history, Recommendation(now, recommendation)), now, window)
    why = (
        f"queue depth {sample.queue_depth} on {sample.reporting_pods}/{sample.ready_pods} "
        f"reporting pods, target {spec.target_queue_depth:g} per replica"
    )
    if recommendation > current:
        step = max(current * MAX_UP_FACTOR, current + MAX_UP_STEP)
        return _change(current, min(recommendation, step), why, history, now, window)
    stabilized = max(r.replicas for r in history)
    if stabilized < current:
        return _change(current, stabilized, why, history, now, window)
    return Decision(current, Action.HOLD, why, history)


def _wanted(sample: LoadSample, target: float, current: int) -> int:
    """Replicas for this load; silent ready pods count as on target."""
    silent = max(sample.ready_pods - sample.reporting_pods, 0)
    up = math.ceil(sample.queue_depth / target)
    down = math.ceil((sample.queue_depth + silent * target) / target)
    if current and abs(sample.queue_depth / target / current - 1) <= TOLERANCE:
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
