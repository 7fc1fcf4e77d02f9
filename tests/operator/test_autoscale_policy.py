"""The autoscaling policy on queued audio seconds: a pure function, tested by tables."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttsfleet.manifests import Autoscaling
from ttsfleet.operator.autoscale_policy import (
    Action,
    LoadSample,
    Recommendation,
    decide,
)

NOW = 1000.0
WINDOW = 120


def spec(**overrides: float) -> Autoscaling:
    values = {
        "enabled": True,
        "min_replicas": 1,
        "max_replicas": 10,
        "target_queued_audio_seconds": 4.0,
        "scale_down_stabilization_seconds": WINDOW,
    }
    values.update(overrides)
    return Autoscaling(**values)  # type: ignore[arg-type]


def load(queued: float, ready: int, reporting: int | None = None) -> LoadSample:
    """``queued`` seconds of audio waiting; the request count is beside the point."""
    return LoadSample(
        ready_pods=ready,
        reporting_pods=ready if reporting is None else reporting,
        queue_depth=1,
        queued_audio_seconds=queued,
    )


def old(replicas: int, age: float = WINDOW + 1) -> Recommendation:
    return Recommendation(NOW - age, replicas)


@dataclass(frozen=True)
class Case:
    name: str
    current: int
    sample: LoadSample | None
    expected: int
    action: Action
    spec: Autoscaling = field(default_factory=spec)
    history: tuple[Recommendation, ...] = (old(1),)


CASES = [
    # No signal: never act on silence.
    Case("no sample holds", 3, None, 3, Action.HOLD),
    Case("no pod reported holds", 3, load(0, ready=3, reporting=0), 3, Action.HOLD),
    Case("no ready pods holds", 3, load(0, ready=0), 3, Action.HOLD),
    # Bounds apply even without load.
    Case("below min rises to min", 1, None, 2, Action.SCALE_UP, spec(min_replicas=2)),
    Case("above max falls to max", 12, load(100, ready=12), 10, Action.SCALE_DOWN),
    Case("at zero rises to min", 0, None, 1, Action.SCALE_UP),
    # Scale-up: immediate, toward ceil(queue / target), capped per step and by max.
    Case("up to the wanted count", 2, load(16, ready=2), 4, Action.SCALE_UP),
    Case("up rounds up", 2, load(13, ready=2), 4, Action.SCALE_UP),
    Case("up capped at double", 5, load(100, ready=5), 10, Action.SCALE_UP, spec(max_replicas=50)),
    Case("up capped at +4 from one", 1, load(100, ready=1), 5, Action.SCALE_UP),
    Case("up capped by max", 6, load(400, ready=6), 10, Action.SCALE_UP),
    Case(
        "fractional target",
        2,
        load(10, ready=2),
        4,
        Action.SCALE_UP,
        spec(target_queued_audio_seconds=2.5),
    ),
    Case(
        "up ignores the stabilization window",
        2,
        load(16, ready=2),
        4,
        Action.SCALE_UP,
        history=(Recommendation(NOW - 1, 2),),
    ),
    Case("silent pods do not block up", 4, load(40, ready=4, reporting=2), 8, Action.SCALE_UP),
    # Tolerance: within 10% of the current count nothing changes.
    Case("within tolerance above", 4, load(17, ready=4), 4, Action.HOLD),
    Case("within tolerance below", 4, load(15, ready=4), 4, Action.HOLD),
    Case("on target", 4, load(16, ready=4), 4, Action.HOLD),
    # Scale-down: only to the highest recommendation in the window.
    Case("down after a quiet window", 4, load(4, ready=4), 1, Action.SCALE_DOWN),
    Case("idle pool falls to min", 4, load(0, ready=4), 2, Action.SCALE_DOWN, spec(min_replicas=2)),
    Case(
        "down held by a recent high recommendation",
        4,
        load(0, ready=4),
        4,
        Action.HOLD,
        history=(Recommendation(NOW - 10, 4),),
    ),
    Case(
        "down to the window's highest, not the lowest",
        6,
        load(0, ready=6),
        3,
        Action.SCALE_DOWN,
        history=(old(6), Recommendation(NOW - 60, 3), Recommendation(NOW - 30, 2)),
    ),
    Case(
        "zero window scales down at once",
        4,
        load(0, ready=4),
        1,
        Action.SCALE_DOWN,
        spec(scale_down_stabilization_seconds=0),
        history=(Recommendation(NOW - 1, 4),),
    ),
    Case(
        "empty history waits a full window before down",
        4,
        load(0, ready=4),
        4,
        Action.HOLD,
        history=(),
    ),
    Case(
        "silent pods count as on target going down",
        4,
        load(0, ready=4, reporting=2),
        2,
        Action.SCALE_DOWN,
    ),
    # Scale to zero and back.
    Case("a sleeping pool stays asleep", 0, None, 0, Action.HOLD, spec(min_replicas=0)),
    Case(
        "an idle pool falls asleep after the window",
        1,
        load(0, ready=1),
        0,
        Action.SCALE_DOWN,
        spec(min_replicas=0),
    ),
    Case(
        "a busy pool stays awake",
        1,
        load(3, ready=1),
        1,
        Action.HOLD,
        spec(min_replicas=0),
    ),
    Case(
        "min equals max pins the count",
        3,
        load(100, ready=3),
        3,
        Action.HOLD,
        spec(min_replicas=3, max_replicas=3),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(case: Case) -> None:
    decision = decide(
        current=case.current,
        sample=case.sample,
        spec=case.spec,
        history=case.history,
        now=NOW,
    )
    assert (decision.replicas, decision.action) == (case.expected, case.action)
    if case.action is not Action.HOLD:
        assert f"{case.current} -> {case.expected} replicas" in decision.message


def test_history_forgets_what_left_the_window() -> None:
    decision = decide(
        current=2,
        sample=load(8, ready=2),
        spec=spec(),
        history=(old(9, age=WINDOW * 3), Recommendation(NOW - 5, 2)),
        now=NOW,
    )
    assert [r.replicas for r in decision.history] == [2, 2]
    assert all(NOW - r.at <= WINDOW for r in decision.history)


def test_message_explains_the_load() -> None:
    decision = decide(current=2, sample=load(40, ready=2), spec=spec(), history=(old(2),), now=NOW)
    assert decision.message == (
        "2 -> 6 replicas: 40.0 s of audio queued on 2/2 reporting pods, target 4 s per replica"
    )


def run(loads: list[int], *, step: float, window: int, current: int = 1) -> list[int]:
    """Feed a sequence of total queued audio seconds, one per tick; return replicas after each."""
    history: tuple[Recommendation, ...] = ()
    replicas = []
    for tick, queue in enumerate(loads):
        decision = decide(
            current=current,
            sample=load(queue, ready=current),
            spec=spec(scale_down_stabilization_seconds=window),
            history=history,
            now=NOW + tick * step,
        )
        current, history = decision.replicas, decision.history
        replicas.append(current)
    return replicas


def test_burst_then_lull_scales_up_fast_and_down_slowly() -> None:
    # Ticks every 10 s; the window is 60 s.
    replicas = run([40] * 3 + [0] * 10, step=10, window=60)
    assert replicas[:3] == [5, 10, 10]  # +4, then doubling, then the max
    assert replicas[3:9] == [10] * 6  # the lull must last the whole window
    assert replicas[9:] == [1] * 4


def test_oscillating_load_does_not_flap() -> None:
    replicas = run([40, 0] * 10, step=10, window=60, current=10)
    assert replicas == [10] * 20


@given(
    current=st.integers(0, 50),
    ready=st.integers(0, 50),
    reporting=st.integers(0, 50),
    queue=st.integers(0, 10_000),
    low=st.integers(1, 20),
    span=st.integers(0, 30),
    target=st.floats(0.1, 100),
    ages=st.lists(st.floats(0, 600), max_size=5),
)
def test_invariants(
    current: int,
    ready: int,
    reporting: int,
    queue: int,
    low: int,
    span: int,
    target: float,
    ages: list[float],
) -> None:
    policy = spec(min_replicas=low, max_replicas=low + span, target_queued_audio_seconds=target)
    history = tuple(Recommendation(NOW - age, current) for age in sorted(ages, reverse=True))
    sample = load(queue, ready=ready, reporting=min(reporting, ready))
    decision = decide(current=current, sample=sample, spec=policy, history=history, now=NOW)
    if low <= current <= low + span:
        assert low <= decision.replicas <= low + span
    else:
        assert decision.replicas == min(max(current, low), low + span)
    assert (decision.replicas == current) == (decision.action is Action.HOLD)
    assert (decision.replicas > current) == (decision.action is Action.SCALE_UP)
    # Up never more than doubles (or +4), except to reach the minimum.
    assert decision.replicas <= max(current * 2, current + 4, low)
    # The history is never empty and forgets what left the window.
    window = policy.scale_down_stabilization_seconds
    assert decision.history
    assert all(NOW - r.at <= window for r in decision.history[:-1])


def test_a_woken_pool_stays_up_a_full_window() -> None:
    """The router scaled the pool 0 -> 1; an idle first report must not put it back at once."""
    policy = spec(min_replicas=0, scale_down_stabilization_seconds=60)
    asleep = decide(current=0, sample=None, spec=policy, history=(old(0),), now=NOW)
    assert asleep.action is Action.HOLD
    woken = decide(
        current=1,
        sample=load(0, ready=1),
        spec=policy,
        history=asleep.history,
        now=NOW + 10,
        previous=asleep.replicas,
    )
    assert woken.action is Action.HOLD
    later = decide(
        current=1,
        sample=load(0, ready=1),
        spec=policy,
        history=woken.history,
        now=NOW + 75,
        previous=woken.replicas,
    )
    assert (later.replicas, later.action) == (0, Action.SCALE_DOWN)


def test_without_the_wake_up_known_an_idle_report_scales_back_down() -> None:
    """The contrast: had the rise not been noticed, the old zero would win at once."""
    policy = spec(min_replicas=0, scale_down_stabilization_seconds=60)
    history = (Recommendation(NOW - 10, 0),)
    decision = decide(current=1, sample=load(0, ready=1), spec=policy, history=history, now=NOW)
    assert decision.replicas == 0
