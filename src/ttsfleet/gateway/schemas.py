"""Request and response bodies of the HTTP API; FastAPI turns them into the OpenAPI spec."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ttsfleet.jobs.model import MAX_CALLBACK_URL, MAX_IDEMPOTENCY_KEY, MAX_JOB_TEXT, MAX_SPEAKER
from ttsfleet.text import MAX_SAMPLE_RATE, MAX_SPEED, MIN_SAMPLE_RATE, MIN_SPEED

# At least one character that is not whitespace (patterns match anywhere).
SPEAKABLE = r"\S"
MAX_SPEECH_INPUT = 20_000
MAX_NAME = 100
SPEAKER_DESCRIPTION = (
    "A speaker of a multi-speaker voice, by name or decimal id (ListVoices lists them); "
    "empty: the voice's default speaker."
)


JobFormat = Literal["wav", "pcm", "mp3", "opus", "aac", "flac", "mulaw", "alaw"]


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1, max_length=MAX_JOB_TEXT, pattern=SPEAKABLE, description="What to say."
    )
    voice: str = Field(
        "", max_length=MAX_NAME, description="A voice name; empty: the fleet's default."
    )
    speaker: str = Field("", max_length=MAX_SPEAKER, description=SPEAKER_DESCRIPTION)
    format: JobFormat = Field(
        "wav",
        description="wav: a WAV file; pcm: headerless 16-bit little-endian mono; mp3, opus "
        "(Ogg), aac, flac; mulaw and alaw (headerless G.711, 8 kHz unless sample_rate says).",
    )
    text_format: Literal["auto", "plain", "ssml"] = Field(
        "auto",
        description="ssml: the SSML subset of docs/audio.md; auto: SSML when the text starts "
        "with <speak.",
    )
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description="1.0 is normal.")
    sample_rate: int | None = Field(
        None, ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE, description="Hz; omitted: the voice's own."
    )
    callback_url: str | None = Field(
        None,
        max_length=MAX_CALLBACK_URL,
        pattern=r"^https?://\S+$",
        description="POSTed the job's status (JSON) when the job ends.",
    )
    idempotency_key: str | None = Field(
        None,
        max_length=MAX_IDEMPOTENCY_KEY,
        description="Submitting the same key again returns the first job instead of a new one "
        "(the Idempotency-Key header does the same; this field wins if both are given).",
    )


class Progress(BaseModel):
    pieces_done: int
    pieces_total: int


class JobStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "succeeded", "failed", "dead_lettered"]
    progress: Progress
    attempts: int
    error: str | None = Field(description="The last error: why it failed, or why it is retrying.")
    voice: str | None
    speaker: str | None = None
    format: JobFormat
    created_at: float = Field(description="Unix time.")
    updated_at: float = Field(description="Unix time.")
    audio_url: str | None = Field(description="Where the audio is, once succeeded.")


class JobList(BaseModel):
    jobs: list[JobStatus]


class SpeechRequest(BaseModel):
    """OpenAI's `POST /v1/audio/speech` body, with the formats and voices this fleet has."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=MAX_NAME,
        description="Accepted for compatibility; the voice decides.",
    )
    input: str = Field(min_length=1, max_length=MAX_SPEECH_INPUT, pattern=SPEAKABLE)
    voice: str = Field(
        "",
        max_length=MAX_NAME,
        description="A fleet voice, or one of OpenAI's names (alloy, nova, ...): each maps to "
        "the voice the gateway is configured with, by default the fleet's default voice.",
    )
    speaker: str = Field(
        "", max_length=MAX_SPEAKER, description=SPEAKER_DESCRIPTION + " Not in OpenAI's API."
    )
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm", "mulaw", "alaw"] = Field(
        "mp3",
        description="OpenAI's six (opus comes in Ogg; pcm is 24 kHz 16-bit little-endian mono; "
        "wav is streamed, its length unknown), plus mulaw and alaw (headerless G.711, 8 kHz).",
    )
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)
    stream_format: Literal["audio", "sse"] = Field(
        "audio",
        description="audio: the file's bytes as they are made; sse: server-sent events "
        "speech.audio.delta (base64 audio) then speech.audio.done.",
    )
    instructions: str | None = Field(
        None,
        max_length=4096,
        description="Accepted and ignored: Piper voices take no style instructions "
        "(the X-Instructions header says so).",
    )
    word_timestamps: bool = Field(
        False,
        description="ttsfleet's addition: each word's start and end (seconds from the start of "
        "the audio). With stream_format sse, a speech.words event before the audio that holds "
        "their start; otherwise one JSON object (SpeechWithWords) instead of the audio bytes.",
    )
    word_phonemes: bool = Field(
        False, description="With word_timestamps: each word's phonemes too (implies it)."
    )


class SpokenWord(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    phonemes: str = Field("", description="The word's phonemes, with word_phonemes.")


class SpeechWithWords(BaseModel):
    """The answer to a word_timestamps request that is not streamed as events."""

    audio: str = Field(description="The whole file in response_format, base64.")
    sample_rate: int
    words: list[SpokenWord]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """Every error, in OpenAI's shape."""

    error: ErrorDetail
