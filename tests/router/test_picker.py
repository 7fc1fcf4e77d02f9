"""The router's decisions as pure functions: whose turn it is, which pod, when to shed."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ttsfleet.router.endpoints import Candidate
from ttsfleet.router.latency import PeakEwma
from ttsfleet.router.picker import (
    FinishTime,
    PowerOfTwoChoices,
    RoundRobin,
    fallback_speed,
    predicted_finish,
    turn,
)
from ttsfleet.router.saturation import saturated

STALE_AFTER = 2.0


def pod(address: str, **state: Any) -> Candidate:
    """A healthy pod with a fresh, empty report unless `state` says otherwise."""
    fields: dict[str, Any] = {
        "address": address,
        "pool": "pool",
        "queue_depth": 0,
        "queue_capacity": 8,
        "router_in_flight": 0,
        "report_age": 0.1,
        "draining": False,
        "ejected": False,
    }
    return Candidate(**(fields | state))


def addresses(candidates: list[Candidate]) -> set[str]:
    return {c.address for c in candidates}


def test_fresh_pods_with_room_take_turns() -> None:
    candidates = [pod("a"), pod("b", queue_depth=8), pod("c", report_age=5.0)]
    assert addresses(turn(candidates, STALE_AFTER)) == {"a"}


def test_stale_means_unknown_capacity_not_idle() -> None:
    """A pod whose report is old is passed over while any pod has a fresh report."""
    candidates = [pod("idle-but-stale", report_age=3.0), pod("busy", queue_depth=5)]
    assert addresses(turn(candidates, STALE_AFTER)) == {"busy"}


def test_without_any_fresh_report_every_live_pod_takes_turns() -> None:
    """Just after start-up nobody has reported yet: that must not refuse every request."""
    candidates = [pod("a", report_age=None), pod("b", report_age=9.0), pod("c", draining=True)]
    assert addresses(turn(candidates, STALE_AFTER)) == {"a", "b"}


def test_draining_pods_never_take_a_turn() -> None:
    assert turn([pod("a", draining=True), pod("b", draining=True, ejected=True)], STALE_AFTER) == []


def test_ejected_pods_take_turns_only_when_all_are_ejected() -> None:
    assert addresses(turn([pod("a", ejected=True), pod("b")], STALE_AFTER)) == {"b"}
    assert addresses(turn([pod("a", ejected=True), pod("b", ejected=True)], STALE_AFTER)) == {
        "a",
        "b",
    }


def test_score_adds_pod_queue_and_router_in_flight() -> None:
    assert pod("a", queue_depth=3, router_in_flight=2).score == 5


def test_power_of_two_never_picks_the_most_loaded_of_several() -> None:
    picker = PowerOfTwoChoices(random.Random(7))
    candidates = [pod(str(depth), queue_depth=depth) for depth in range(5)]
    picks = Counter(picker.choose(candidates, 1.0).address for _ in range(2000))
    assert "4" not in picks
    # The least loaded wins every pair it is in: most often chosen.
    assert picks.most_common(1)[0][0] == "0"
    # Yet the load spreads: two random choices, not always the minimum.
    assert len(picks) == 4


def test_power_of_two_between_two_takes_the_lower_score() -> None:
    picker = PowerOfTwoChoices(random.Random(1))
    candidates = [pod("busy", router_in_flight=3), pod("quiet", router_in_flight=1)]
    assert {picker.choose(candidates, 1.0).address for _ in range(50)} == {"quiet"}


def test_power_of_two_with_one_candidate() -> None:
    assert PowerOfTwoChoices().choose([pod("only")], 1.0).address == "only"


def test_round_robin_ignores_load() -> None:
    picker = RoundRobin()
    candidates = [pod("a", queue_depth=7), pod("b"), pod("c")]
    assert [picker.choose(candidates, 1.0).address for _ in range(6)] == list("abcabc")


def test_saturated_when_every_fresh_pod_is_full() -> None:
    full = [pod("a", queue_depth=8), pod("b", queue_depth=9), pod("c", report_age=7.0)]
    assert saturated(full, STALE_AFTER)
    assert not saturated([*full, pod("d", queue_depth=7)], STALE_AFTER)


def test_not_saturated_without_fresh_reports_or_known_capacity() -> None:
    assert not saturated([pod("a", report_age=None)], STALE_AFTER)
    assert not saturated([pod("a", queue_depth=50, queue_capacity=0)], STALE_AFTER)
    assert not saturated([], STALE_AFTER)


def test_draining_and_ejected_pods_do_not_count_as_capacity() -> None:
    candidates = [pod("a", queue_depth=8), pod("b", draining=True), pod("c", ejected=True)]
    assert saturated(candidates, STALE_AFTER)


def test_batch_requests_count_a_half_full_pod_as_full() -> None:
    """Batch work is shed at half the queue while interactive work still gets in."""
    candidates = [pod("a", queue_depth=4), pod("b", queue_depth=5)]
    assert addresses(turn(candidates, STALE_AFTER)) == {"a", "b"}
    assert turn(candidates, STALE_AFTER, room_share=0.5) == []
    assert saturated(candidates, STALE_AFTER, room_share=0.5)
    assert not saturated(candidates, STALE_AFTER)
    assert addresses(turn([*candidates, pod("c", queue_depth=3)], STALE_AFTER, 0.5)) == {"c"}


def test_a_slow_pod_with_a_short_queue_loses_to_a_fast_pod_with_a_longer_one() -> None:
    """Two seconds of audio at 1x beats one second at a third of the speed; queue depth says
    the opposite."""
    slow = pod("slow", queue_depth=1, queued_audio_seconds=1.0, audio_seconds_per_second=1 / 3)
    fast = pod("fast", queue_depth=2, queued_audio_seconds=2.0, audio_seconds_per_second=1.0)
    assert predicted_finish(slow, 0.5, 1.0) == 4.5
    assert predicted_finish(fast, 0.5, 1.0) == 2.5
    picker = FinishTime()
    assert {picker.choose([slow, fast], 0.5).address for _ in range(10)} == {"fast"}
    assert {PowerOfTwoChoices().choose([slow, fast], 0.5).address for _ in range(10)} == {"slow"}


def test_the_request_length_and_unreported_sends_count() -> None:
    """A long request goes where it finishes first; audio sent since a report is counted."""
    quick = pod("quick", queued_audio_seconds=3.0, audio_seconds_per_second=3.0)
    idle_slow = pod("idle-slow", audio_seconds_per_second=1.0)
    picker = FinishTime()
    assert picker.choose([quick, idle_slow], 0.5).address == "idle-slow"  # 0.5 s vs 1.17 s
    assert picker.choose([quick, idle_slow], 30.0).address == "quick"  # 11 s vs 30 s
    sent = pod("idle-slow", audio_seconds_per_second=1.0, unreported_audio_seconds=2.0)
    assert picker.choose([quick, sent], 0.5).address == "quick"


def test_a_pod_without_a_measured_speed_is_assumed_average() -> None:
    measured = [pod("a", audio_seconds_per_second=2.0), pod("b", audio_seconds_per_second=4.0)]
    assert fallback_speed([*measured, pod("new")]) == 3.0
    assert fallback_speed([pod("new")]) == 1.0
    assert predicted_finish(pod("new", queued_audio_seconds=3.0), 0.0, 3.0) == 1.0


def test_an_idle_even_fleet_takes_turns() -> None:
    picker = FinishTime()
    candidates = [pod("a"), pod("b"), pod("c")]
    assert sorted(picker.choose(candidates, 1.0).address for _ in range(6)) == list("aabbcc")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pod_whose_first_audio_slows_is_penalized_then_recovers() -> None:
    """Peak-EWMA: one slow answer counts at once; later fast ones (or none) wear it off."""
    clock = Clock()
    first_audio = PeakEwma(decay_seconds=5.0, clock=clock)
    for _ in range(5):
        clock.now += 0.5
        first_audio.observe(0.05)
    assert first_audio.seconds < 0.06
    clock.now += 0.5
    first_audio.observe(2.0)  # stalled: a two-second wait for first audio
    assert first_audio.seconds == 2.0
    # The spiked pod holds less work than the other, and is avoided all the same.
    spiked = pod("spiked", first_audio_seconds=first_audio.seconds, queued_audio_seconds=1.0)
    steady = pod("steady", first_audio_seconds=0.05, queued_audio_seconds=1.5)
    assert FinishTime().choose([spiked, steady], 1.0).address == "steady"
    for _ in range(30):  # fifteen seconds of fast answers again
        clock.now += 0.5
        first_audio.observe(0.05)
    assert first_audio.seconds < 0.2
    recovered = pod("spiked", first_audio_seconds=first_audio.seconds, queued_audio_seconds=1.0)
    assert FinishTime().choose([steady, recovered], 1.0).address == "spiked"
    clock.now += 30  # and with no answers at all it decays, so the pod is tried again
    first_audio.observe(3.0)
    clock.now += 30
    assert first_audio.seconds < 0.01
