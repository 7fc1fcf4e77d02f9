"""A saturated pod refuses before it does any work on a request (no phonemizing, no queueing)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import grpc
import pytest
from timed_fleet import VOICE, TimedEngine, address, timed_config, words

from ttsfleet.inference.engine import Utterance
from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.ssml import Segment


class CountingEngine(TimedEngine):
    """Counts how often the front end runs: a refusal must not make it run."""

    def __init__(self) -> None:
        super().__init__(step_seconds=0.2, max_batch_size=1)
        self.front_end_calls = 0

    def utterances(self, text: str | Sequence[Segment], words: bool = False) -> list[Utterance]:
        self.front_end_calls += 1
        return super().utterances(text, words)


async def test_a_full_pod_refuses_without_phonemizing() -> None:
    engine = CountingEngine()
    server = InferenceServer(timed_config(VOICE, queue_limit=2, max_batch_size=1), {VOICE: engine})
    await server.start("127.0.0.1", 0, None)
    try:
        async with grpc.aio.insecure_channel(address(server)) as channel:
            stub = tts_pb2_grpc.TTSServiceStub(channel)

            async def long_stream() -> None:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for _ in stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(100))):
                        pass

            busy = [asyncio.create_task(long_stream()) for _ in range(3)]  # 1 in flight, 2 queued
            for _ in range(300):
                if server.scheduler.load.queue_depth == 2:
                    break
                await asyncio.sleep(0.05)
            assert server.scheduler.load.queue_depth == 2
            before = engine.front_end_calls
            for _ in range(20):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Synthesize(tts_pb2.TTSRequest(text=words(50)))
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert engine.front_end_calls == before
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)
    finally:
        await server.stop(1.0)
