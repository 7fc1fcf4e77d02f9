"""A unary answer too large for gRPC clients is refused before any work, never after it.

The seed client (the seed stubs, gRPC's default 4 MiB receive limit) gets
INVALID_ARGUMENT naming the ways out, and those ways work.
"""

from __future__ import annotations

import grpc
import pytest
from timed_fleet import running_router, stub_for, timed_pods

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2

# Over the router's fan-out threshold (1,200 characters): the router joins it.
LONG = " ".join(f"Sentence number {i} is here." for i in range(60))


def _served(pods: list[InferenceServer]) -> float:
    return sum(
        pod.metrics.registry.get_sample_value(
            "ttsfleet_inference_requests_total",
            {"method": "StreamSynthesize", "voice": "timed", "code": "OK"},
        )
        or 0.0
        for pod in pods
    )


async def test_the_router_refuses_a_long_unary_wav_up_front_and_streams_it() -> None:
    async with (
        timed_pods([0.0, 0.0]) as pods,
        running_router(pods) as router,
        stub_for(router) as stub,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Synthesize(tts_pb2.TTSRequest(text=LONG))
        assert _served(pods) == 0, "refused before any piece was sent"
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        message = raised.value.details() or ""
        assert "over the 3.0 MiB limit for Synthesize" in message
        assert "use StreamSynthesize, or a compressed encoding" in message
        streamed = [c async for c in stub.StreamSynthesize(tts_pb2.TTSRequest(text=LONG))]
        compressed = await stub.Synthesize(
            tts_pb2.TTSRequest(text=LONG, encoding=tts_pb2.AUDIO_ENCODING_OGG_OPUS)
        )
    assert streamed and compressed.audio.startswith(b"OggS")
