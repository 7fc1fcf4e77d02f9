"""Time to first audio of a short streamed request, as a person waiting for a reply sees it."""

from __future__ import annotations

import asyncio
import statistics
import time

from ttsfleet.proto import tts_pb2, tts_pb2_grpc

SHORT = "Hello there."
TRIES = 5


async def first_audio_seconds(stub: tts_pb2_grpc.TTSServiceStub) -> float:
    started = time.perf_counter()
    call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=SHORT))
    async for _ in call:
        waited = time.perf_counter() - started
        call.cancel()
        return waited
    raise AssertionError("no audio")


async def median_first_audio(stub: tts_pb2_grpc.TTSServiceStub) -> float:
    """The median of TRIES requests, one after another."""
    times = []
    for _ in range(TRIES):
        times.append(await first_audio_seconds(stub))
        await asyncio.sleep(0.05)
    return statistics.median(times)
