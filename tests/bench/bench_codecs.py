"""Encodings against PCM16: size, encoding CPU, and time to first byte of a stream from a pod.

Run: python tests/bench/bench_codecs.py [--rounds N]
Size is bytes per second of speech; CPU is the encoder's process time per
second of audio (PyAV/FFmpeg, one thread); first byte is the median time
from StreamSynthesize to its first chunk on a real pod with the real voice
over loopback, as a ratio to PCM16's in the same run (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from voices import JOE_QUIET, load_engines, pod_config, running_server

from ttsfleet import audio, codecs
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

TEXT = (
    "Thank you for calling. Your package left our warehouse this morning and should "
    "arrive before the weekend. If you would like to speak with a person, say agent."
)


def speech(engines: dict[str, object]) -> tuple[audio.Audio, int]:
    """The text's audio from the voice itself, at its native rate."""
    engine = engines[JOE_QUIET.name]
    items = [(u, engine.default_params(1.0)) for u in engine.utterances(TEXT)]  # type: ignore[attr-defined]
    pieces = [piece for step in engine.run_batch(items) for piece in step]  # type: ignore[attr-defined]
    return np.concatenate(pieces), engine.info.sample_rate  # type: ignore[attr-defined]


def encode_cost(
    samples: audio.Audio, native: int, codec: codecs.Codec, rounds: int
) -> tuple[float, float]:
    """(bytes per second of audio, encoder CPU seconds per second of audio)."""
    rate = codec.rate(0, native)
    resampler = audio.Resampler(native, rate)
    pcm = audio.to_pcm16(
        np.concatenate([resampler.convert(samples), resampler.convert(samples[:0], last=True)])
    )
    seconds = len(pcm) / 2 / rate
    started = time.process_time()
    for _ in range(rounds):
        data = codecs.encode(pcm, rate, codec)
    return len(data) / seconds, (time.process_time() - started) / rounds / seconds


async def first_bytes(port: int, rounds: int) -> dict[str, float]:
    """Median seconds to each encoding's first streamed chunk, rounds interleaved."""
    times: dict[str, list[float]] = {codec.name: [] for codec in codecs.CODECS.values()}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        for _ in range(rounds):
            for codec in codecs.CODECS.values():
                started = time.perf_counter()
                call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT, encoding=codec.encoding))
                await anext(aiter(call))
                times[codec.name].append(time.perf_counter() - started)
                call.cancel()
    return {name: statistics.median(values) for name, values in times.items()}


async def run(rounds: int) -> None:
    engines = load_engines(JOE_QUIET)
    samples, native = speech(engines)
    async with running_server(pod_config(JOE_QUIET), engines) as pod:
        await first_bytes(pod.port, 1)  # warm up
        ttfb = await first_bytes(pod.port, rounds)
    pcm_bytes = encode_cost(samples, native, codecs.PCM16, rounds)[0]
    print(
        f"{samples.size / native:.1f} s of speech, {rounds} rounds; "
        f"first byte relative to PCM16's {ttfb['pcm'] * 1000:.0f} ms"
    )
    print(
        f"{'encoding':10} {'rate Hz':>8} {'bytes/s':>8} {'vs PCM16':>9} {'CPU ms/s':>9} {'first byte':>11}"
    )
    for codec in codecs.CODECS.values():
        size, cpu = encode_cost(samples, native, codec, rounds)
        print(
            f"{codec.label:10} {codec.rate(0, native):8} {size:8.0f} {size / pcm_bytes:8.2f}x "
            f"{cpu * 1000:9.2f} {ttfb[codec.name] / ttfb['pcm']:10.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
