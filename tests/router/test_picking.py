"""Picking over real pods of controlled speed: load decides, draining pods and full queues are respected."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from timed_fleet import VOICE, fill, running_router, stub_for, timed_pods, until, words

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.server import RouterServer


def picks(router: RouterServer, pod: InferenceServer) -> float:
    value = router.metrics.registry.get_sample_value(
        "ttsfleet_router_picks_total", {"pool": "pool", "pod": f"127.0.0.1:{pod.port}"}
    )
    return value or 0.0


async def closed_loop(stub: tts_pb2_grpc.TTSServiceStub, clients: int, each: int) -> None:
    """`clients` callers, each streaming `each` requests one after another."""

    async def client() -> None:
        for _ in range(each):
            chunks = [c async for c in stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(10)))]
            assert len(chunks) == 10

    await asyncio.gather(*(client() for _ in range(clients)))


async def test_queue_aware_picking_favours_the_faster_pod() -> None:
    async with (
        timed_pods([0.002, 0.03], max_batch_size=2) as (fast, slow),
        running_router([fast, slow]) as router,
        stub_for(router) as stub,
    ):
        await closed_loop(stub, clients=6, each=5)
        assert picks(router, fast) > 2 * picks(router, slow)


async def test_round_robin_alternates_whatever_the_load() -> None:
    async with (
        timed_pods([0.002, 0.03], max_batch_size=2) as (fast, slow),
        running_router([fast, slow], picker="round-robin") as router,
        stub_for(router) as stub,
    ):
        await closed_loop(stub, clients=4, each=3)
        assert picks(router, fast) == picks(router, slow) == 6


async def test_a_draining_pod_finishes_its_work_and_gets_no_more() -> None:
    async with (
        timed_pods([0.01, 0.01]) as pods,
        running_router(pods) as router,
        stub_for(router) as stub,
    ):
        long_call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(60)))
        await long_call.read()
        (leaving,) = [pod for pod in pods if not pod.scheduler.idle]
        draining = asyncio.create_task(leaving.stop(grace=30))
        endpoint = router.datastore.get(f"127.0.0.1:{leaving.port}")
        assert endpoint is not None
        await until(lambda: endpoint.draining)
        before = picks(router, leaving)
        await closed_loop(stub, clients=4, each=3)
        assert picks(router, leaving) == before
        rest = 0
        while await long_call.read() is not grpc.aio.EOF:
            rest += 1
        assert rest == 59
        assert await long_call.code() is grpc.StatusCode.OK
        await draining


async def test_every_queue_full_sheds_at_once_without_asking_a_pod() -> None:
    """One active and one waiting request fill each pod; the next is refused by the router."""
    async with (
        timed_pods([0.05, 0.05], queue_limit=1, max_batch_size=1) as pods,
        running_router(pods) as router,
        stub_for(router) as stub,
    ):
        filling = await fill(stub, pods)
        await until(lambda: all(c.full for c in router.datastore.candidates(VOICE)))
        sent = sum(picks(router, pod) for pod in pods)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Synthesize(tts_pb2.TTSRequest(text="hi"))
        assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "every pod serving voice 'timed' has a full queue" in (error.value.details() or "")
        assert sum(picks(router, pod) for pod in pods) == sent
        for call in filling:
            call.cancel()


async def test_a_short_saturation_wait_lets_the_request_through_when_room_appears() -> None:
    async with (
        timed_pods([0.02], queue_limit=1, max_batch_size=1) as pods,
        running_router(pods, saturation_wait=60.0) as router,
        stub_for(router) as stub,
    ):
        short_request = tts_pb2.TTSRequest(text=words(5))
        first = stub.StreamSynthesize(short_request)
        second = stub.StreamSynthesize(short_request)
        await until(lambda: router.datastore.candidates(VOICE)[0].full)
        waited = await stub.Synthesize(tts_pb2.TTSRequest(text="hi"))
        assert waited.audio.startswith(b"RIFF")
        assert [len([c async for c in call]) for call in (first, second)] == [5, 5]


async def test_picks_are_logged_with_the_runner_up_and_predictions_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With every pick logged: the chosen pod, its predicted finish and the runner-up's;
    each finished call's time on its pod is compared with its prediction."""
    async with (
        timed_pods([0.002, 0.002]) as pods,
        running_router(pods, pick_log_every=1) as router,
        stub_for(router) as stub,
    ):
        with caplog.at_level("INFO", logger="ttsfleet.router.forwarder"):
            for _ in range(3):
                await stub.Synthesize(tts_pb2.TTSRequest(text=words(10)))
        ratio_count = router.metrics.registry.get_sample_value(
            "ttsfleet_router_finish_vs_predicted_ratio_count", {"pool": "pool"}
        )
    picked = [r for r in caplog.records if r.getMessage() == "pod picked"]
    assert len(picked) == 3 and ratio_count == 3
    addresses = {f"127.0.0.1:{pod.port}" for pod in pods}
    for record in picked:
        fields = vars(record)
        assert fields["pod"] in addresses and fields["runner_up"] in addresses - {fields["pod"]}
        assert fields["predicted_seconds"] > 0 and fields["runner_up_seconds"] > 0
        assert fields["picker"] == "finish-time"
