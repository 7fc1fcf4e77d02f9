"""A real speech recogniser for tests: the gate's Whisper base (CTranslate2), offline.

Nothing is downloaded: the model's packages are in the gate extra, which
the test extra includes. Word error rates are the gate's (jiwer, normalised).
"""

from __future__ import annotations

from ttsfleet.gate import measure
from ttsfleet.gate.recogniser import WHISPER_RATE, transcribe, whisper_model

__all__ = ["WHISPER_RATE", "transcribe", "whisper_model", "word_error_rate"]


def word_error_rate(reference: str, heard: str) -> float:
    return measure.word_error_rate([reference], [heard])
