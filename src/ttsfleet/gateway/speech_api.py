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
from collections.abc import AsyncGenerator, AsyncIterator

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ttsfleet import codecs
from ttsfleet.errors import TTSError
from ttsfleet.gateway.auth import Caller
from ttsfleet.gateway.errors import responses
from ttsfleet.gateway.openai_voices import VoiceMap
from ttsfleet.gateway.schemas import SpeechRequest
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
            },
            "description": "Speech, streamed; X-Sample-Rate gives the rate.",
        },
        **responses(400, 429, 502, 503, 504),
    },
    summary="Text to speech, streamed (OpenAI-compatible)",
)
async def create_speech(body: SpeechRequest, request: Request) -> StreamingResponse:
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

    async def pcm() -> AsyncGenerator[tuple[bytes, int], None]:
        yield first.chunk, first.sample_rate
        async for chunk in stream:
            yield chunk.chunk, chunk.sample_rate

    async def audio() -> AsyncGenerator[bytes, None]:
        try:
            async for data, _ in codecs.encode_stream(pcm(), codec):
                yield data
        finally:
            await stream.aclose()
            slots.give_back()

    headers = {"X-Sample-Rate": str(first.sample_rate)}
    if body.instructions:
        headers["X-Instructions"] = INSTRUCTIONS_IGNORED
    if body.stream_format == "sse":
        return StreamingResponse(events(audio()), media_type="text/event-stream", headers=headers)
    return StreamingResponse(audio(), media_type=codec.media_type, headers=headers)


async def events(audio: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """OpenAI's speech events: a `speech.audio.delta` per chunk, then `speech.audio.done`.

    Tokens are not counted here: the usage numbers are zeros, present so that
    clients that read them find them.
    """
    async with contextlib.aclosing(audio):
        async for data in audio:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    yield _event({"type": "speech.audio.done", "usage": usage})


def _event(data: dict[str, object]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()
