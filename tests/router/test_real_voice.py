"""End to end with the real Piper voice: two inference pods behind the router, on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from audio_checks import assert_speech, pcm16, read_wav
from timed_fleet import address
from voices import JOE, load_engines, pod_config, running_server

from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.discovery.static import StaticDiscovery
from ttsfleet.router.server import RouterServer

pytestmark = pytest.mark.voice  # the real Piper voice

TEXT = "The router picked a pod for this sentence. Then the audio streamed back."


@pytest.fixture(scope="module")
def engines() -> dict[str, Any]:
    """Loading the voice takes a second or two: once for the module; both pods share it."""
    return load_engines(JOE)


@pytest.fixture
async def stub(engines: dict[str, Any]) -> AsyncIterator[tts_pb2_grpc.TTSServiceStub]:
    async with contextlib.AsyncExitStack() as stack:
        pods = [
            await stack.enter_async_context(running_server(pod_config(JOE), engines))
            for _ in range(2)
        ]
        discovery = StaticDiscovery([(address(pod), "standard", ["joe"]) for pod in pods], "joe")
        router = RouterServer(discovery)
        await router.start()
        stack.push_async_callback(router.stop, 5.0)
        channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{router.port}")
        )
        yield tts_pb2_grpc.TTSServiceStub(channel)


async def test_speech_through_the_router(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    response = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, request_id="e2e-1"))
    rate, samples = read_wav(response.audio)
    assert (response.voice, response.request_id, rate) == ("joe", "e2e-1", 22050)
    assert_speech(samples, rate, TEXT)


async def test_streamed_speech_through_the_router(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT))
    chunks = [chunk async for chunk in call]
    rate = int(dict(await call.initial_metadata())["x-tts-sample-rate"])
    assert len(chunks) >= 2, "one chunk per sentence at least"
    assert_speech(pcm16(b"".join(c.chunk for c in chunks)), rate, TEXT)
