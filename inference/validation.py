"""Checks a request against the pod's limits before any work is queued.

Every failure is an RpcError with the status code DESIGN.md assigns and a
message that tells the caller what to change.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Collection
from dataclasses import dataclass

import grpc

from ttsfleet.proto import tts_pb2

MIN_SPEED, MAX_SPEED = 0.25, 4.0
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
MAX_REQUEST_ID_LENGTH = 128
_REQUEST_ID = re.compile(r"^[\x21-\x7e]+$")
WAV, PCM16 = tts_pb2.AUDIO_ENCODING_WAV, tts_pb2.AUDIO_ENCODING_PCM16


class RpcError(Exception):
    """A request that ends with this status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ValidRequest:
    text: str
    voice: str
    speed: float
    sample_rate: int  # 0: the voice's own
    encoding: tts_pb2.AudioEncoding


def request_id(given: str, metadata_value: str | None) -> str:
    """The caller's request id (field first, then x-request-id metadata), or a fresh one."""
    value = given or metadata_value or ""
    if not value:
        return uuid.uuid4().hex
    if len(value) > MAX_REQUEST_ID_LENGTH or not _REQUEST_ID.match(value):
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request_id must be 1-{MAX_REQUEST_ID_LENGTH} printable ASCII characters without spaces",
        )
    return value


def clean_text(text: str) -> str:
    """Replaces control and format characters with spaces: the phonemizer reads C strings."""
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in text
    ).strip()


def validate(
    request: tts_pb2.TTSRequest,
    *,
    streaming: bool,
    voices: Collection[str],
    default_voice: str,
    max_text_length: int,
) -> ValidRequest:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    if len(request.text) > max_text_length:
        raise RpcError(
            invalid, f"text is {len(request.text)} characters; the limit is {max_text_length}"
        )
    text = clean_text(request.text)
    if not text:
        raise RpcError(invalid, "text is empty")
    voice = request.voice or default_voice
    if voice not in voices:
        raise RpcError(
            grpc.StatusCode.NOT_FOUND,
            f"unknown voice {voice!r}; this endpoint serves: {', '.join(sorted(voices))}",
        )
    speed = request.speed or 1.0
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise RpcError(invalid, f"speed {speed} is outside {MIN_SPEED}-{MAX_SPEED}")
    rate = request.sample_rate
    if rate and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise RpcError(
            invalid, f"sample_rate {rate} is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    encoding = request.encoding or (PCM16 if streaming else WAV)
    if encoding not in (WAV, PCM16):
        raise RpcError(invalid, f"unknown encoding {request.encoding}")
    if streaming and encoding != PCM16:
        raise RpcError(invalid, "StreamSynthesize sends PCM16 only; use Synthesize for WAV")
    return ValidRequest(text=text, voice=voice, speed=speed, sample_rate=rate, encoding=encoding)
