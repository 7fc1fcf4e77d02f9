"""One pod on a GPU against its own engine, and against Piper on onnxruntime on the same machine.

Run: python tests/bench/bench_gpu_pod.py [--quick] [--device cuda|cpu] [--tf32] [--seconds S]

1. Engine sweep: the torch engine alone (windowed, as a pod runs it), batch
   1 to 256 of the same eight sentences repeated: seconds of audio per wall
   second, time to the first piece, peak device memory; Piper on
   onnxruntime (CPU, one sentence at a time) as the baseline.
2. One pod (`ttsfleet inference` in its own process, batching.maxBatchSize
   the largest client count) under 1, 16, 64 and 128 concurrent streaming
   clients, each sending the three-sentence texts one after another for S
   seconds: seconds of audio per wall second and time to first audio p50 and
   p99; then the same clients against a Piper onnxruntime pod on the CPUs.

Runs on any CUDA machine. `--quick` is for CPU: batches 1, 2, 4, 8, clients
1 and 4, 3 s each; on a CPU shared with other work, run it with
OMP_NUM_THREADS=1 (torch's threads collapse when they outnumber free cores;
the pod inherits the setting). The figures are one run's; quote ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_inference import TEXTS, pct, start_worker
from bench_torch_engine import SENTENCES
from voices import JOE

from ttsfleet.inference.engine import BatchItem, VoiceEngine
from ttsfleet.inference.engines.piper_onnx import PiperOnnxEngine
from ttsfleet.inference.engines.piper_torch import PiperTorchEngine
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

JOE_TORCH = dataclasses.replace(JOE, name="joe-torch", engine="piper-torch")


@dataclass(frozen=True)
class Sizes:
    batches: tuple[int, ...]
    clients: tuple[int, ...]
    seconds: float


FULL = Sizes((1, 2, 4, 8, 16, 32, 64, 128, 256), (1, 16, 64, 128), 10.0)
QUICK = Sizes((1, 2, 4, 8), (1, 4), 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a CPU")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None)
    parser.add_argument("--tf32", action="store_true", help="the pod's gpu.tf32 setting")
    parser.add_argument("--seconds", type=float, default=None, help="per client count")
    parser.add_argument("--rounds", type=int, default=3, help="engine runs per batch size")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"torch {torch.__version__} on {_device_name(device)}, TF32 {'on' if args.tf32 else 'off'}"
        f"; CPU threads {torch.get_num_threads()}\n"
    )
    engine_sweep(device, sizes.batches, args.tf32, args.rounds)
    asyncio.run(pod_sweep(device, sizes.clients, args.seconds or sizes.seconds, args.tf32))


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "CPU"


def engine_sweep(device: str, batches: Sequence[int], tf32: bool, rounds: int) -> None:
    """Each figure is the median of `rounds` runs."""
    torch_engine = PiperTorchEngine(JOE_TORCH, device, max_batch_size=max(batches), tf32=tf32)
    onnx = PiperOnnxEngine(JOE, "cpu")
    params = torch_engine.default_params(1.0)
    sentences = [(u, params) for text in SENTENCES for u in torch_engine.utterances(text)]
    rate = torch_engine.info.sample_rate
    _run(torch_engine, sentences[:2])  # warm up
    onnx_runs = [_run(onnx, [item]) for item in sentences]  # its graph takes one sentence
    onnx_wall = sum(wall for wall, _, _ in onnx_runs)
    onnx_audio = sum(samples for _, samples, _ in onnx_runs)
    print("Engine alone (x real time: seconds of audio per wall second)")
    print(f"{'engine':<26}{'batch':>6}{'x real time':>13}{'first audio ms':>16}{'peak MiB':>10}")
    print(f"{'onnxruntime, CPU':<26}{1:>6}{onnx_audio / rate / onnx_wall:>13.1f}{'':>16}{'':>10}")
    for size in batches:
        items = (sentences * (size // len(sentences) + 1))[:size]
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        runs = [_run(torch_engine, items) for _ in range(rounds)]
        speed = statistics.median(samples / rate / wall for wall, samples, _ in runs)
        first = statistics.median(first for _, _, first in runs)
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if device == "cuda" else "-"
        print(f"{'torch, ' + device:<26}{size:>6}{speed:>13.1f}{first * 1000:>16.1f}{peak:>10}")
    print()


def _run(engine: VoiceEngine, items: list[BatchItem]) -> tuple[float, int, float]:
    """Wall seconds for the whole batch, samples made, seconds to the first piece."""
    started = time.perf_counter()
    first = 0.0
    samples = 0
    for step in engine.run_batch(items):
        first = first or time.perf_counter() - started
        samples += sum(piece.size for piece in step)
    return time.perf_counter() - started, samples, first


async def pod_sweep(device: str, clients: Sequence[int], seconds: float, tf32: bool) -> None:
    print(f"One pod over gRPC, streaming clients for {seconds:.0f} s each")
    print(
        f"{'pod':<26}{'clients':>8}{'requests':>10}{'x real time':>13}"
        f"{'TTFA p50 ms':>13}{'TTFA p99 ms':>13}  codes"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for voice, pod_device, label in (
            (JOE_TORCH, device, f"torch, {device}"),
            (JOE, "cpu", "onnxruntime, CPU"),
        ):
            process, port = await start_worker(Path(tmp), max(clients), voice, pod_device, tf32)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = tts_pb2_grpc.TTSServiceStub(channel)
                    await _stream(stub, TEXTS[0], time.perf_counter() + 60)  # warm up
                    for count in clients:
                        row = await _clients(stub, count, seconds)
                        print(f"{label:<26}{count:>8}{row}")
            finally:
                process.terminate()
                await process.wait()


async def _clients(stub: tts_pb2_grpc.TTSServiceStub, count: int, seconds: float) -> str:
    """`count` clients streaming texts in turn until `seconds` pass; one table row."""
    first_audio: list[float] = []
    codes: Counter[str] = Counter()
    audio_bytes = 0
    started = time.perf_counter()
    stop_at = started + seconds

    async def client(k: int) -> None:
        nonlocal audio_bytes
        sent = 0
        while time.perf_counter() < stop_at and sent < 10_000:
            text = TEXTS[(k + sent) % len(TEXTS)]
            sent += 1
            code, ttfa, size = await _stream(stub, text, stop_at + 120)
            codes[code] += 1
            audio_bytes += size
            if ttfa is not None:
                first_audio.append(ttfa)

    await asyncio.gather(*(client(k) for k in range(count)))
    wall = time.perf_counter() - started
    audio_seconds = audio_bytes / 2 / 22050
    ttfa_cells = (
        f"{pct(first_audio, 50) * 1000:>13.0f}{pct(first_audio, 99) * 1000:>13.0f}"
        if first_audio
        else f"{'-':>13}{'-':>13}"
    )
    return f"{sum(codes.values()):>10}{audio_seconds / wall:>13.1f}{ttfa_cells}  " + ", ".join(
        f"{code} {n}" for code, n in sorted(codes.items())
    )


async def _stream(
    stub: tts_pb2_grpc.TTSServiceStub, text: str, deadline: float
) -> tuple[str, float | None, int]:
    """One streamed request: its status code, seconds to first audio, PCM bytes received."""
    started = time.perf_counter()
    ttfa = None
    size = 0
    call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=text), timeout=deadline - started)
    try:
        async for chunk in call:
            ttfa = ttfa or time.perf_counter() - started
            size += len(chunk.chunk)
    except grpc.aio.AioRpcError as error:
        return error.code().name, ttfa, size
    return "OK", ttfa, size


if __name__ == "__main__":
    main()
