"""What a job is: the request, its lifecycle states, and the record every backend keeps.

A job moves queued → running → succeeded, or back to queued (with a delay)
when an attempt fails for a reason worth retrying; it ends failed when the
request itself is wrong (retrying cannot help) and dead-lettered when it kept
failing for other reasons, with the last error kept for the caller to read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.parse
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, cast

import grpc

from ttsfleet import codecs, ssml
from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2
from ttsfleet.text import MAX_SAMPLE_RATE, MAX_SPEED, MIN_SAMPLE_RATE, MIN_SPEED

# Long-form texts: far beyond one pod's maxTextLength, since jobs are split.
MAX_JOB_TEXT = 200_000
MAX_IDEMPOTENCY_KEY = 200
MAX_SPEAKER = 100
MAX_CALLBACK_URL = 2000
# The error a job carries when its lease ran out: the worker died or hung.
LOST = "the worker running it stopped before finishing (its lease ran out)"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.DEAD_LETTERED)


class AudioFormat(StrEnum):
    """A job's audio file: every encoding the fleet has, by its codec's name."""

    WAV = "wav"
    PCM = "pcm"
    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    FLAC = "flac"
    MULAW = "mulaw"
    ALAW = "alaw"

    @property
    def codec(self) -> codecs.Codec:
        return codecs.BY_NAME[self.value]

    @property
    def media_type(self) -> str:
        return self.codec.media_type


def _invalid(field: str, message: str) -> TTSError:
    """A request no attempt could satisfy, naming the field at fault."""
    return TTSError(grpc.StatusCode.INVALID_ARGUMENT, message, field=field)


def _usable_url(url: str) -> bool:
    """A URL the callback sender can dial: checked here so a bad one is refused at submission."""
    if len(url) > MAX_CALLBACK_URL or any(c.isspace() or ord(c) < 0x20 for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and "@" not in parts.netloc
    )


@dataclass(frozen=True)
class JobSpec:
    """What the caller asked for; validated on construction so no backend stores a bad one."""

    text: str
    voice: str = ""
    # A multi-speaker voice's speaker, by name or decimal id; empty: the voice's default.
    speaker: str = ""
    format: AudioFormat = AudioFormat.WAV
    speed: float = 1.0
    sample_rate: int = 0  # 0: the voice's own (the encoding's, for μ-law, A-law and Opus)
    # A tts_pb2.TextFormat: SSML, plain text, or unspecified (SSML if it starts with <speak).
    text_format: int = tts_pb2.TEXT_FORMAT_UNSPECIFIED
    callback_url: str = ""
    idempotency_key: str = ""
    # Who submitted it (the gateway's authenticated caller); "" when auth is off.
    tenant: str = ""

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise _invalid("text", "text is empty")
        if len(self.text) > MAX_JOB_TEXT:
            raise _invalid(
                "text", f"text is {len(self.text)} characters; the limit is {MAX_JOB_TEXT}"
            )
        if not (math.isfinite(self.speed) and MIN_SPEED <= self.speed <= MAX_SPEED):
            raise _invalid("speed", f"speed {self.speed} is outside {MIN_SPEED}-{MAX_SPEED}")
        if len(self.speaker) > MAX_SPEAKER:
            raise _invalid("speaker", f"speaker is longer than {MAX_SPEAKER} characters")
        if self.sample_rate and not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise _invalid(
                "sample_rate",
                f"sample_rate {self.sample_rate} is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz",
            )
        if self.sample_rate:
            try:
                self.format.codec.check_rate(self.sample_rate)
            except TTSError as error:
                raise _invalid("sample_rate", error.message) from None
        if self.ssml:
            ssml.parse(self.text)  # malformed markup is refused now, not at every attempt
        if self.callback_url and not _usable_url(self.callback_url):
            raise _invalid(
                "callback_url",
                "callback_url must be an http:// or https:// URL with a host, an optional "
                "numeric port and no user name or password (2000 characters at most)",
            )
        if len(self.idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise _invalid(
                "idempotency_key",
                f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters",
            )

    @property
    def scoped_key(self) -> str:
        """The idempotency key within its tenant's own space ("" for none)."""
        if not self.idempotency_key:
            return ""
        return f"{len(self.tenant)}:{self.tenant}:{self.idempotency_key}"

    @property
    def ssml(self) -> bool:
        return ssml.is_ssml(self.text, cast(tts_pb2.TextFormat, self.text_format))

    def request(self, request_id: str) -> tts_pb2.TTSRequest:
        """The synthesis request every piece of this job starts from (PCM16, encoded at the
        end at the rate its encoding needs)."""
        return tts_pb2.TTSRequest(
            text=self.text,
            voice=self.voice,
            speaker=self.speaker,
            encoding=tts_pb2.AUDIO_ENCODING_PCM16,
            sample_rate=self.format.codec.source_rate(self.sample_rate),
            text_format=cast(tts_pb2.TextFormat, self.text_format),
            speed=self.speed,
            request_id=request_id,
            priority=tts_pb2.PRIORITY_BATCH,  # nobody waits on each piece of a job
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: str) -> JobSpec:
        """A stored spec as it was accepted, not checked again: rules tightened since (a callback
        URL refused today) must not make an accepted job unreadable, and so unrunnable."""
        stored = json.loads(data)
        stored["format"] = AudioFormat(stored["format"])
        spec = object.__new__(cls)
        for field in dataclasses.fields(cls):
            object.__setattr__(spec, field.name, stored.get(field.name, field.default))
        return spec


@dataclass(frozen=True)
class Job:
    """A job as a backend stores it."""

    id: str
    spec: JobSpec
    state: JobState
    created_at: float
    updated_at: float
    attempts: int = 0
    pieces_done: int = 0
    pieces_total: int = 0
    error: str = ""
    # Where the audio is in the result store, once succeeded.
    result: str = ""

    def public(self) -> dict[str, Any]:
        """The job as callers see it (HTTP status, callbacks): no text, no storage keys."""
        return {
            "id": self.id,
            "state": self.state.value,
            "progress": {"pieces_done": self.pieces_done, "pieces_total": self.pieces_total},
            "attempts": self.attempts,
            "error": self.error or None,
            "voice": self.spec.voice or None,
            "speaker": self.spec.speaker or None,
            "format": self.spec.format.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "audio_url": f"/v1/jobs/{self.id}/audio" if self.state is JobState.SUCCEEDED else None,
        }


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a running job; `token` proves the hold is still its own."""

    job: Job
    token: str
