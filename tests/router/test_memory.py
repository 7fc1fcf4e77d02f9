"""The largest request the router accepts costs it memory bounded by its settings, not by the text."""

from __future__ import annotations

import contextlib
from pathlib import Path

import grpc
import pytest
from timed_fleet import VOICE, child_process, pod_process, words

from ttsfleet.proto import tts_pb2, tts_pb2_grpc

MAX_TEXT_CHARS = 100_000  # the router's default limit
BOUND_MIB = 64


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_the_largest_request_streams_in_bounded_memory_and_unary_is_refused() -> None:
    text = words(MAX_TEXT_CHARS // 8)[:MAX_TEXT_CHARS]  # ~12,500 words, each a chunk of audio
    async with contextlib.AsyncExitStack() as stack:
        pods = [await stack.enter_async_context(pod_process(0.0005, batch=8)) for _ in range(2)]
        endpoints = [a for p in pods for a in ("--endpoint", f"127.0.0.1:{p.port}=pool:{VOICE}")]
        command = ["-m", "ttsfleet.cli", "router", "--host", "127.0.0.1", "--metrics-port", "-1"]
        router = await stack.enter_async_context(
            child_process(*command, "--log-level", "WARNING", *endpoints)
        )
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{router.port}", options=[("grpc.max_send_message_length", 1 << 24)]
        ) as channel:
            stub = tts_pb2_grpc.TTSServiceStub(channel)
            await stub.Synthesize(tts_pb2.TTSRequest(text="warm up"), timeout=30)
            before = peak_rss_mib(router.process.pid)
            received = 0
            async for chunk in stub.StreamSynthesize(tts_pb2.TTSRequest(text=text), timeout=600):
                received += len(chunk.chunk)
            grown = peak_rss_mib(router.process.pid) - before
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Synthesize(tts_pb2.TTSRequest(text=text), timeout=60)
    assert received == len(text.split()) * 640  # every word's chunk (320 samples) arrived
    assert grown < BOUND_MIB, f"the router grew {grown:.1f} MiB for {received / 2**20:.1f} MiB"
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "stream" in (refused.value.details() or "").lower()
