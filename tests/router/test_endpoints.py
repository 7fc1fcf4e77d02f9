"""The router's datastore: following the topology, load reports, ejection. No pod is dialled."""

from __future__ import annotations

import asyncio

from ttsfleet.router.discovery import PoolEndpoints, Topology
from ttsfleet.router.discovery.static import topology
from ttsfleet.router.endpoints import Datastore, Endpoint
from ttsfleet.router.settings import RouterSettings

# Channels are created but never used: nothing listens on these (port 9 is "discard").
A, B, C = "127.0.0.1:9", "127.0.0.2:9", "127.0.0.3:9"


def fleet(*entries: tuple[str, str, list[str]], default: str = "joe") -> Topology:
    return topology(entries, default)


def single(settings: RouterSettings) -> tuple[Datastore, Endpoint]:
    """A datastore following one pod, and that pod."""
    store = Datastore(settings)
    store.apply(fleet((A, "standard", ["joe"])))
    endpoint = store.get(A)
    assert endpoint is not None
    return store, endpoint


async def test_follows_the_topology_and_keeps_state_of_pods_that_stay() -> None:
    store = Datastore(RouterSettings())
    store.apply(fleet((A, "standard", ["joe"]), (B, "standard", ["joe"])))
    kept = store.get(A)
    assert kept is not None
    kept.in_flight = 2
    gone = store.apply(fleet((A, "standard", ["joe"]), (C, "premium", ["amy"])))
    assert [e.address for e in gone] == [B]
    assert {e.address for e in store.endpoints} == {A, C}
    assert store.get(A) is kept and kept.in_flight == 2
    assert store.voices == {"joe", "amy"}
    await store.close()


async def test_pools_without_pods_still_declare_their_voices() -> None:
    store = Datastore(RouterSettings())
    store.apply(Topology({"empty": PoolEndpoints("empty", frozenset({"amy"}))}, "amy"))
    assert store.voices == {"amy"}
    assert store.candidates("amy") == []
    await store.close()


async def test_candidates_are_the_pods_serving_the_voice() -> None:
    store = Datastore(RouterSettings())
    store.apply(fleet((A, "standard", ["joe"]), (B, "both", ["joe", "amy"])))
    assert {c.address for c in store.candidates("amy")} == {B}
    assert {c.address for c in store.candidates("joe", exclude=[A])} == {B}
    assert {c.address for c in store.candidates("")} == {A, B}
    await store.close()


async def test_a_report_is_fresh_until_forgotten() -> None:
    store, endpoint = single(RouterSettings())
    (before,) = store.candidates("joe")
    assert before.report_age is None
    store.report(endpoint, 5, queue_capacity=8, draining=False)
    (after,) = store.candidates("joe")
    assert after.report_age is not None and after.fresh(2.0)
    assert (after.queue_depth, after.queue_capacity) == (5, 8)
    store.forget_load(endpoint)
    assert store.candidates("joe")[0].report_age is None
    await store.close()


async def test_failures_in_a_row_eject_for_longer_each_time() -> None:
    store, endpoint = single(RouterSettings(eject_after_failures=2, ejection_seconds=30))
    assert not store.failed(endpoint)
    store.succeeded(endpoint)
    assert not store.failed(endpoint), "a success in between resets the count"
    assert store.failed(endpoint)
    first = endpoint.ejected_until
    assert store.candidates("joe")[0].ejected
    store.failed(endpoint)
    assert store.failed(endpoint)
    assert endpoint.ejected_until > first + 25, "the second ejection in a row lasts twice as long"
    await store.close()


async def test_waiting_for_a_change_ends_at_the_next_report() -> None:
    store, endpoint = single(RouterSettings())
    waiter = asyncio.create_task(store.wait_for_change(30))
    await asyncio.sleep(0)
    store.report(endpoint, 1)
    await asyncio.wait_for(waiter, 5)
    await store.close()
