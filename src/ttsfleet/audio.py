"""Audio formats on the wire: PCM16 bytes, WAV files (whole or streamed), sample-rate conversion.

The pod makes them, the router joins fanned-out pieces into them, the job
worker stores them and the HTTP gateway streams them: one definition for all.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import numpy.typing as npt
import soxr

# Float samples in [-1, 1], as engines make them.
Audio = npt.NDArray[np.float32]

_INT16_MAX = 32767.0


def to_pcm16(audio: Audio) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM, clipping overshoot."""
    clipped = np.clip(audio, -1.0, 1.0) * _INT16_MAX
    return clipped.astype("<i2").tobytes()


def wav_file(pcm16: bytes, sample_rate: int) -> bytes:
    """A complete mono 16-bit WAV file around PCM samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm16)
    return buffer.getvalue()


UNKNOWN_SIZE = 0xFFFFFFFF


def streaming_wav_header(sample_rate: int) -> bytes:
    """A mono 16-bit WAV header whose sizes say "until the stream ends", as streaming encoders write."""
    return (
        b"RIFF" + struct.pack("<I", UNKNOWN_SIZE) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", UNKNOWN_SIZE)
    )  # fmt: skip


class Resampler:
    """Converts one stream's audio piece by piece, without seams between pieces."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self._stream = (
            None
            if source_rate == target_rate
            else soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32")
        )

    def convert(self, piece: Audio, last: bool = False) -> Audio:
        if self._stream is None:
            return piece
        result: Audio = self._stream.resample_chunk(piece, last=last)
        return result
