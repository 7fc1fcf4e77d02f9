"""What the gate measures of one revision: each text streamed from its pods, timed and heard.

Time to first audio and errors come from the stream itself; loudness is
integrated loudness (ITU-R BS.1770, LUFS) over all the texts' audio;
clipping is the share of samples at full scale; the word error rate is
Whisper's transcript against the text, normalised (case, punctuation).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import jiwer
import numpy as np
import numpy.typing as npt
import pyloudnorm
from faster_whisper import WhisperModel

from ttsfleet.gate.recogniser import transcribe
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.tls import ClientTLS

FULL_SCALE = 32767 / 32768  # PCM16's largest positive sample
_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),  # type: ignore[no-untyped-call]
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


@dataclass(frozen=True)
class Spoken:
    """One text as a revision spoke it (no samples when the call failed)."""

    text: str
    samples: npt.NDArray[np.float32]
    sample_rate: int
    ttfa: float | None  # seconds; None: no audio came
    error: str = ""


@dataclass(frozen=True)
class Measurements:
    """One revision's figures over the gate's texts."""

    word_error_rate: float
    median_ttfa: float  # seconds; inf when no text gave audio
    error_rate: float
    loudness_lufs: float  # -inf for silence
    clipped_fraction: float


def _channel(address: str, tls: ClientTLS | None) -> grpc.Channel:
    """Plaintext, or mutual TLS towards pods that require client certificates."""
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, tls.credentials, tls.options)


def speak(address: str, text: str, timeout: float, tls: ClientTLS | None = None) -> Spoken:
    """Streams one text from `address` (a pod or a Service of pods), timing the first chunk."""
    started = time.monotonic()
    ttfa = None
    chunks: list[bytes] = []
    rate = 0
    try:
        with _channel(address, tls) as channel:
            stream = tts_pb2_grpc.TTSServiceStub(channel).StreamSynthesize(
                tts_pb2.TTSRequest(text=text), timeout=timeout
            )
            for chunk in stream:
                if ttfa is None and chunk.chunk:
                    ttfa = time.monotonic() - started
                rate = chunk.sample_rate or rate
                chunks.append(chunk.chunk)
    except grpc.RpcError as error:
        empty = np.zeros(0, np.float32)
        return Spoken(text, empty, rate, None, f"{error.code().name}: {error.details()}")
    pcm = (np.frombuffer(b"".join(chunks), dtype="<i2") / 32768).astype(np.float32)
    return Spoken(text, pcm, rate, ttfa)


def word_error_rate(references: Sequence[str], heard: Sequence[str]) -> float:
    return float(
        jiwer.wer(
            list(references),
            list(heard),
            reference_transform=_NORMALISE,
            hypothesis_transform=_NORMALISE,
        )
    )


def _served(spoken: Sequence[Spoken]) -> list[Spoken]:
    return [s for s in spoken if not s.error and s.samples.size]


def median_ttfa(spoken: Sequence[Spoken]) -> float:
    """Seconds to first audio, the median over the texts that gave audio (inf: none did)."""
    ttfas = [s.ttfa for s in _served(spoken) if s.ttfa is not None]
    return statistics.median(ttfas) if ttfas else float("inf")


def measure(spoken: Sequence[Spoken], model: WhisperModel, language: str) -> Measurements:
    """The figures of one revision (a text that failed counts as all words wrong)."""
    served = _served(spoken)
    heard = {id(s): transcribe(model, s.samples, s.sample_rate, language) for s in served}
    wer = word_error_rate([s.text for s in spoken], [heard.get(id(s), "") for s in spoken])
    loudness = float("-inf")
    clipped = 0.0
    if served:
        rate = served[0].sample_rate
        audio = np.concatenate([s.samples for s in served if s.sample_rate == rate])
        loudness = float(pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64)))
        clipped = float(np.mean(np.abs(audio) >= FULL_SCALE))
    return Measurements(
        word_error_rate=wer,
        median_ttfa=median_ttfa(spoken),
        error_rate=1 - len(served) / len(spoken) if spoken else 1.0,
        loudness_lufs=loudness,
        clipped_fraction=clipped,
    )
