"""Checks a request against the pod's limits before any work is queued.

Every failure is a TTSError with the status code DESIGN.md assigns and a
message that tells the caller what to change.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace

import grpc

from ttsfleet import ssml
from ttsfleet.codecs import Codec, codec
from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2
from ttsfleet.text import MAX_SAMPLE_RATE, MAX_SPEED, MIN_SAMPLE_RATE, MIN_SPEED, clean_text
from ttsfleet.wire import Priority


@dataclass(frozen=True)
class ValidRequest:
    text: str  # what is spoken, without markup
    segments: tuple[ssml.Segment, ...]
    voice: str
    speed: float
    sample_rate: int  # 0: the codec's or the voice's own
    codec: Codec
    priority: Priority
    tenant: str
    speaker: str = ""  # a name or decimal id, resolved against the voice's speakers
    # Word timings; asking for the words' phonemes asks for their timings too.
    word_timestamps: bool = False
    word_phonemes: bool = False


def validate(
    request: tts_pb2.TTSRequest,
    *,
    priority: Priority,
    tenant: str,
    streaming: bool,
    voices: Collection[str],
    default_voice: str,
    max_text_length: int,
) -> ValidRequest:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    if len(request.text) > max_text_length:
        raise TTSError(
            invalid, f"text is {len(request.text)} characters; the limit is {max_text_length}"
        )
    if ssml.is_ssml(request.text, request.text_format):
        # Parsed as sent: cleaning first would move the line and column errors name.
        segments = [_cleaned(segment) for segment in ssml.parse(request.text)]
        text = ssml.spoken_text(segments)
    else:
        text = clean_text(request.text)
        segments = ssml.plain(text)
    if not text:
        raise TTSError(invalid, "text is empty")
    voice = request.voice or default_voice
    if voice not in voices:
        raise TTSError(
            grpc.StatusCode.NOT_FOUND,
            f"unknown voice {voice!r}; this endpoint serves: {', '.join(sorted(voices))}",
        )
    speed = request.speed or 1.0
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise TTSError(invalid, f"speed {speed} is outside {MIN_SPEED}-{MAX_SPEED}")
    rate = request.sample_rate
    if rate and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise TTSError(
            invalid, f"sample_rate {rate} is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    chosen = codec(request.encoding, streaming)
    if rate:
        chosen.check_rate(rate)
    return ValidRequest(
        text=text,
        segments=tuple(segments),
        voice=voice,
        speed=speed,
        sample_rate=rate,
        codec=chosen,
        priority=priority,
        tenant=tenant,
        speaker=request.speaker.strip(),
        word_timestamps=request.word_timestamps or request.word_phonemes,
        word_phonemes=request.word_phonemes,
    )


def _cleaned(segment: ssml.Segment) -> ssml.Segment:
    parts = (replace(part, text=clean_text(part.text)) for part in segment.parts)
    return replace(segment, parts=tuple(part for part in parts if part.text))
