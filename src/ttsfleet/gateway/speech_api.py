"""OpenAI-compatible `POST /v1/audio/speech`: speech streamed as it is made.

Long inputs fan out over the fleet like jobs do, in order. A WAV stream
cannot know its length in advance, so its header says "unknown" (the
largest sizes), as streaming WAV encoders do; players read it to the end.
Errors before the first audio are proper HTTP errors; after it, the status
is already sent and the stream just ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ttsfleet.audio import streaming_wav_header
from ttsfleet.errors import TTSError
from ttsfleet.gateway.errors import responses
from ttsfleet.gateway.schemas import SpeechRequest
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.proto import tts_pb2

router = APIRouter(tags=["speech"])


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
            "content": {"audio/wav": {}, "audio/pcm": {}},
            "description": "Speech, streamed; X-Sample-Rate gives the rate.",
        },
        **responses(400, 429, 502, 503, 504),
    },
    summary="Text to speech, streamed (OpenAI-compatible)",
)
async def create_speech(body: SpeechRequest, request: Request) -> StreamingResponse:
    fleet: FleetClient = request.app.state.fleet
    slots: StreamSlots = request.app.state.speech_slots
    slots.take()
    stream = fleet.stream(
        tts_pb2.TTSRequest(
            text=body.input,
            voice=body.voice,
            speed=body.speed,
            encoding=tts_pb2.AUDIO_ENCODING_PCM16,
            request_id=request.headers.get("x-request-id", ""),
        )
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

    async def audio() -> AsyncIterator[bytes]:
        try:
            if body.response_format == "wav":
                yield streaming_wav_header(first.sample_rate)
            yield first.chunk
            async for chunk in stream:
                yield chunk.chunk
        finally:
            await stream.aclose()
            slots.give_back()

    return StreamingResponse(
        audio(),
        media_type="audio/wav" if body.response_format == "wav" else "audio/pcm",
        headers={"X-Sample-Rate": str(first.sample_rate)},
    )
