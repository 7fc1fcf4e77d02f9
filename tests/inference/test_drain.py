"""SIGTERM drains a real pod process: every accepted stream finishes, new work is refused, exit 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from audio_checks import assert_speech, pcm16
from voices import JOE

from ttsfleet.manifests import Batching, PodConfig, Pool
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice

STREAMS = 32
TEXT = "The pod is told to stop. It finishes what it has accepted."


async def test_sigterm_under_32_streams_finishes_them_all_and_exits_0(tmp_path: Path) -> None:
    pool = Pool("drain", ("joe",), "joe", queue_limit=64, batching=Batching(8, 2))
    config = tmp_path / "pod.yaml"
    config.write_text(yaml.safe_dump(PodConfig.of(pool, [JOE]).to_dict()))
    ready = tmp_path / "ready"
    pod = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ttsfleet.cli", "inference", "--config", str(config),
        "--port", "0", "--metrics-port", "0", "--ready-file", str(ready),
        "--drain-seconds", "120", "--log-level", "WARNING",
    )  # fmt: skip
    try:
        for _ in range(1200):
            if ready.exists() or pod.returncode is not None:
                break
            await asyncio.sleep(0.1)
        port = int(ready.read_text().split()[0])
        started = asyncio.Event()
        first_chunks = 0

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tts_pb2_grpc.TTSServiceStub(channel)

            async def stream() -> tuple[grpc.StatusCode, bytes, int]:
                nonlocal first_chunks
                call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT), timeout=300)
                audio, rate = b"", 0
                async for chunk in call:
                    if not audio:
                        first_chunks += 1
                        started.set()
                    audio += chunk.chunk
                    rate = chunk.sample_rate
                return await call.code(), audio, rate

            streams = [asyncio.create_task(stream()) for _ in range(STREAMS)]
            await asyncio.wait_for(started.wait(), 120)
            pod.send_signal(signal.SIGTERM)  # with most of the streams still queued or running
            assert first_chunks < STREAMS
            results = await asyncio.gather(*streams)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Synthesize(tts_pb2.TTSRequest(text="one more"), timeout=30)
            assert refused.value.code() in (
                grpc.StatusCode.UNAVAILABLE,  # draining, or already gone
                grpc.StatusCode.CANCELLED,
            )
        assert [code for code, _, _ in results] == [grpc.StatusCode.OK] * STREAMS
        for _, audio, rate in results:
            assert_speech(pcm16(audio), rate, TEXT)
        assert await asyncio.wait_for(pod.wait(), 180) == 0
    finally:
        if pod.returncode is None:
            pod.kill()
            await pod.wait()
