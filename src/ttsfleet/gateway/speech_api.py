"""OpenAI-compatible `POST /v1/audio/speech`: speech streamed as it is made.

A drop-in for OpenAI's clients: their formats and defaults (MP3; PCM at
24 kHz), their voice names (see `openai_voices`), and their server-sent
events. Long inputs fan out over the fleet like jobs do, in order; the
gateway asks the fleet for PCM16 and encodes it here, each chunk ending on
a frame or page. A WAV stream cannot know its length in advance, so its
header says "unknown" (the largest sizes), as streaming WAV encoders do.
Errors before the first audio are proper HTTP errors; after it, the status
is already sent and the stream just ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ttsfleet import codecs
from ttsfleet.errors import TTSError
from ttsfleet.gateway.auth import Caller
from ttsfleet.gateway.errors import responses
from ttsfleet.gateway.openai_voices import VoiceMap
from ttsfleet.gateway.schemas import SpeechRequest, SpeechWithWords, SpokenWord
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.proto import tts_pb2

router = APIRouter(tags=["speech"])

# OpenAI's `pcm` is 24 kHz; its other formats carry their rate in the file.
OPENAI_PCM_RATE = 24_000
INSTRUCTIONS_IGNORED = "ignored: Piper voices take no style instructions"


class StreamSlots:
    """Counts the streams in flight; past the limit new ones are refused with 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def take(self) -> None:
        if self.active >= self.limit:
            raise TTSError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.limit} speech streams are running; retry shortly",
                retry_after=1,
            )
        self.active += 1

    def give_back(self) -> None:
        self.active -= 1


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                **{codec.media_type: {} for codec in codecs.BY_NAME.values()},
                "text/event-stream": {},
                "application/json": {"schema": SpeechWithWords.model_json_schema()},
            },
            "description": "Speech, streamed; X-Sample-Rate gives the rate. With "
            "word_timestamps and no SSE, one JSON object with the audio and its words.",
        },
        **responses(400, 429, 502, 503, 504),
    },
    summary="Text to speech, streamed (OpenAI-compatible)",
)
async def create_speech(body: SpeechRequest, request: Request) -> Response:
    fleet: FleetClient = request.app.state.fleet
    slots: StreamSlots = request.app.state.speech_slots
    voices: VoiceMap = request.app.state.openai_voices
    codec = codecs.BY_NAME[body.response_format]
    caller: Caller = request.state.caller
    slots.take()
    stream = fleet.stream(
        tts_pb2.TTSRequest(
            text=body.input,
            voice=voices.resolve(body.voice),
            speaker=body.speaker,
            speed=body.speed,
            encoding=tts_pb2.AUDIO_ENCODING_PCM16,
            sample_rate=OPENAI_PCM_RATE if codec is codecs.PCM16 else codec.default_rate,
            request_id=request.headers.get("x-request-id", ""),
            word_timestamps=body.word_timestamps,
            word_phonemes=body.word_phonemes,
            priority=caller.priority.field,
        ),
        tenant=caller.tenant,
    )
    try:
        first = await anext(stream)
    except grpc.aio.AioRpcError as error:
        await stream.aclose()
        slots.give_back()
        raise TTSError.from_rpc(error) from None
    except BaseException:
        await stream.aclose()
        slots.give_back()
        raise

    async def pcm() -> AsyncGenerator[tuple[bytes, int, Sequence[tts_pb2.WordTiming]], None]:
        yield first.chunk, first.sample_rate, first.words
        async for chunk in stream:
            yield chunk.chunk, chunk.sample_rate, chunk.words

    async def encoded() -> AsyncGenerator[tuple[bytes, list[tts_pb2.WordTiming]], None]:
        try:
            async for data, _, words in codecs.encode_stream(pcm(), codec):
                yield data, words
        finally:
            await stream.aclose()
            slots.give_back()

    headers = {"X-Sample-Rate": str(first.sample_rate)}
    if body.instructions:
        headers["X-Instructions"] = INSTRUCTIONS_IGNORED
    if body.stream_format == "sse":
        return StreamingResponse(events(encoded()), media_type="text/event-stream", headers=headers)
    if body.word_timestamps or body.word_phonemes:
        return JSONResponse(await with_words(encoded(), first.sample_rate), headers=headers)
    return StreamingResponse(audio(encoded()), media_type=codec.media_type, headers=headers)


async def audio(
    encoded: AsyncGenerator[tuple[bytes, list[tts_pb2.WordTiming]], None],
) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(encoded):
        async for data, _ in encoded:
            yield data


async def with_words(
    encoded: AsyncGenerator[tuple[bytes, list[tts_pb2.WordTiming]], None], sample_rate: int
) -> dict[str, object]:
    """The whole answer as SpeechWithWords: the file, then every word.

    Nothing is sent before the end, so a failure on the way is a proper HTTP error.
    """
    data = bytearray()
    words: list[dict[str, object]] = []
    async with contextlib.aclosing(encoded):
        try:
            async for chunk, chunk_words in encoded:
                data += chunk
                words += map(_word, chunk_words)
        except grpc.aio.AioRpcError as error:
            raise TTSError.from_rpc(error) from None
    return SpeechWithWords.model_validate(
        {"audio": base64.b64encode(data).decode(), "sample_rate": sample_rate, "words": words}
    ).model_dump()


async def events(
    encoded: AsyncGenerator[tuple[bytes, list[tts_pb2.WordTiming]], None],
) -> AsyncIterator[bytes]:
    """OpenAI's speech events: a `speech.audio.delta` per chunk, then `speech.audio.done`.

    With word timings asked for, a `speech.words` event (ttsfleet's own) comes
    before the delta whose audio the words start in. Tokens are not counted
    here: the usage numbers are zeros, present so that clients that read them
    find them.
    """
    async with contextlib.aclosing(encoded):
        async for data, words in encoded:
            if words:
                yield _event({"type": "speech.words", "words": [_word(w) for w in words]})
            if data:
                delta = base64.b64encode(data).decode()
                yield _event({"type": "speech.audio.delta", "audio": delta})
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    yield _event({"type": "speech.audio.done", "usage": usage})


def _word(word: tts_pb2.WordTiming) -> dict[str, object]:
    return SpokenWord(
        word=word.word, start=word.start, end=word.end, phonemes=word.phonemes
    ).model_dump()


def _event(data: dict[str, object]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()
