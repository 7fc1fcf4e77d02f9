"""The router's decisions as pure functions: whose turn it is, which pod, when to shed."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ttsfleet.router.endpoints import Candidate
from ttsfleet.router.picker import PowerOfTwoChoices, RoundRobin, turn
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
    picks = Counter(picker.choose(candidates).address for _ in range(2000))
    assert "4" not in picks
    # The least loaded wins every pair it is in: most often chosen.
    assert picks.most_common(1)[0][0] == "0"
    # Yet the load spreads: two random choices, not always the minimum.
    assert len(picks) == 4


def test_power_of_two_between_two_takes_the_lower_score() -> None:
    picker = PowerOfTwoChoices(random.Random(1))
    candidates = [pod("busy", router_in_flight=3), pod("quiet", router_in_flight=1)]
    assert {picker.choose(candidates).address for _ in range(50)} == {"quiet"}


def test_power_of_two_with_one_candidate() -> None:
    assert PowerOfTwoChoices().choose([pod("only")]).address == "only"


def test_round_robin_ignores_load() -> None:
    picker = RoundRobin()
    candidates = [pod("a", queue_depth=7), pod("b"), pod("c")]
    assert [picker.choose(candidates).address for _ in range(6)] == list("abcabc")


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
