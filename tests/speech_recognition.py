"""A real speech recogniser for tests: the gate's Whisper base (CTranslate2), offline.

Nothing is downloaded: the model's packages are in the gate extra, which
the test extra includes. Word error rates are the gate's (jiwer, normalised);
word start times are Whisper's own (`word_timestamps=True`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr
from faster_whisper import WhisperModel

from ttsfleet.gate import measure
from ttsfleet.gate.recogniser import WHISPER_RATE, transcribe, whisper_model

__all__ = [
    "WHISPER_RATE",
    "Heard",
    "start_differences",
    "transcribe",
    "whisper_model",
    "word_error_rate",
    "word_starts",
]


def word_error_rate(reference: str, heard: str) -> float:
    return measure.word_error_rate([reference], [heard])


@dataclass(frozen=True)
class Heard:
    word: str
    start: float


def word_starts(model: WhisperModel, samples: npt.NDArray[np.float32], rate: int) -> list[Heard]:
    """Each word the recogniser hears, with the second it says the word starts at."""
    audio = soxr.resample(samples, rate, WHISPER_RATE).astype(np.float32)
    segments, _ = model.transcribe(audio, language="en", beam_size=5, word_timestamps=True)
    return [
        Heard(word.word.strip(), word.start) for segment in segments for word in segment.words or ()
    ]


def start_differences(said: Sequence[Heard], heard: Sequence[Heard]) -> list[float]:
    """|start difference| of every word both lists have at the same place (matched in order)."""
    ours = [_normal(h.word) for h in said]
    theirs = [_normal(h.word) for h in heard]
    matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    return [
        abs(said[block.a + k].start - heard[block.b + k].start)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]


def _normal(word: str) -> str:
    return "".join(re.findall(r"[a-z']+", word.lower()))
