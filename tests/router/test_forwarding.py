"""The router's data path over real gRPC: both services, bytes untouched, ids, deadlines."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_checks import assert_serving_and_reflected
from timed_fleet import VOICE, address, running_router, stub_for, timed_pods, until

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc, ttsfleet_v1_pb2_grpc
from ttsfleet.router.discovery.static import StaticDiscovery
from ttsfleet.router.server import RouterServer

TEXT = "one two three four five"


async def test_streams_pass_through_byte_for_byte(
    pods: list[InferenceServer], stub: tts_pb2_grpc.TTSServiceStub
) -> None:
    request = tts_pb2.TTSRequest(text=TEXT, request_id="compare-1")
    routed = [chunk.SerializeToString() async for chunk in stub.StreamSynthesize(request)]
    async with grpc.aio.insecure_channel(address(pods[0])) as channel:
        direct = tts_pb2_grpc.TTSServiceStub(channel).StreamSynthesize(request)
        assert routed == [chunk.SerializeToString() async for chunk in direct]
    assert len(routed) == 5, "one chunk per word"


@pytest.mark.parametrize(
    "stub_class", [tts_pb2_grpc.TTSServiceStub, ttsfleet_v1_pb2_grpc.SynthesizerStub]
)
async def test_both_services_are_routed(router: RouterServer, stub_class: type) -> None:
    async with stub_for(router, stub_class) as stub:
        call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT))
        chunks = [chunk async for chunk in call]
        headers = dict(await call.initial_metadata())
        response = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT))
    assert len(chunks) == 5
    assert headers["x-tts-sample-rate"] == "16000"
    assert "x-ttsfleet-queue-depth" not in headers, "load headers stay inside the fleet"
    assert response.audio.startswith(b"RIFF") and response.voice == VOICE


async def test_request_id_travels_from_metadata_or_field(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    from_header = await stub.Synthesize(
        tts_pb2.TTSRequest(text=TEXT), metadata=(("x-request-id", "from-header"),)
    )
    from_field = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, request_id="from-field"))
    assert (from_header.request_id, from_field.request_id) == ("from-header", "from-field")
    call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT))
    generated = dict(await call.initial_metadata())["x-request-id"]
    assert len(generated) == 32
    assert [c async for c in call]


async def test_requests_without_a_voice_get_the_fleets_default() -> None:
    """The pods' own default is "b"; the fleet's is "a": the router's choice wins."""
    async with (
        timed_pods([0.0], voices=("b", "a")) as pods,
        running_router(pods, voices=("a", "b"), default_voice="a") as router,
        stub_for(router) as stub,
    ):
        unnamed = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT))
        named = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, voice="b"))
    assert (unnamed.voice, named.voice) == ("a", "b")


async def test_unknown_voice_is_not_found_without_asking_a_pod(
    router: RouterServer, stub: tts_pb2_grpc.TTSServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, voice="nobody"))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "unknown voice 'nobody'; this fleet serves: timed" in (error.value.details() or "")
    assert all(e.in_flight == 0 and e.failures == 0 for e in router.datastore.endpoints)


async def test_pod_errors_pass_through_and_are_not_retried(
    router: RouterServer, stub: tts_pb2_grpc.TTSServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Synthesize(tts_pb2.TTSRequest(text=""))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "text is empty"
    retries = router.metrics.registry.get_sample_value(
        "ttsfleet_router_retries_total", {"pool": "pool"}
    )
    assert retries is None


async def test_list_voices_describes_every_pool() -> None:
    async with (
        timed_pods([0.0], voices=("a",)) as first,
        timed_pods([0.0], voices=("b", "c")) as second,
    ):
        discovery_pods = [(address(p), "one", ["a"]) for p in first]
        discovery_pods += [(address(p), "two", ["b", "c", "declared-only"]) for p in second]
        router = RouterServer(StaticDiscovery(discovery_pods, "a"))
        await router.start()
        try:
            async with stub_for(router, ttsfleet_v1_pb2_grpc.SynthesizerStub) as stub:
                response = await stub.ListVoices(tts_pb2.ListVoicesRequest())
        finally:
            await router.stop(1)
    assert [v.name for v in response.voices] == ["a", "b", "c", "declared-only"]
    assert response.voices[0].engine == "timed" and response.voices[0].sample_rate == 16000
    assert response.voices[3].engine == "", "a voice no pod describes is listed by name"
    assert response.default_voice == "a"


async def test_client_deadline_bounds_the_upstream_call() -> None:
    async with (
        timed_pods([0.2]) as pods,
        running_router(pods) as router,
        stub_for(router) as stub,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT * 4), timeout=0.3)
        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await until(lambda: pods[0].scheduler.idle)


async def test_client_cancellation_stops_the_pod() -> None:
    async with (
        timed_pods([0.02]) as pods,
        running_router(pods) as router,
        stub_for(router) as stub,
    ):
        call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=" ".join(["word"] * 500)))
        await call.read()
        assert not pods[0].scheduler.idle
        call.cancel()
        await until(lambda: pods[0].scheduler.idle)
        await until(lambda: router.datastore.endpoints[0].in_flight == 0)


async def test_health_and_reflection(router: RouterServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
        names = await assert_serving_and_reflected(channel)
    assert {"TTSService", "ttsfleet.v1.Synthesizer", "grpc.health.v1.Health"} <= names


async def test_concurrent_streams_all_complete(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    async def one(i: int) -> int:
        request = tts_pb2.TTSRequest(text=TEXT, request_id=f"r{i}")
        return len([c async for c in stub.StreamSynthesize(request)])

    assert await asyncio.gather(*(one(i) for i in range(40))) == [5] * 40
