"""OpenAI's own Python SDK against the real gateway, router and pod with the real voice.

Every response format, whole and streamed, decoded by FFmpeg and as long as
the fleet's PCM; OpenAI's voice names, its 24 kHz PCM and its speech events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio
from audio_checks import decode
from job_helpers import running_gateway
from timed_fleet import running_router, stub_for
from voices import JOE_QUIET, pod_config, running_server

from ttsfleet.proto import tts_pb2

# The real Piper voice; one fleet for the module, so one event loop for it.
pytestmark = [pytest.mark.voice, pytest.mark.asyncio(loop_scope="module")]

TEXT = "Open the pod bay doors, please. I am afraid I can not do that."
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm", "mulaw", "alaw")
# The rate FFmpeg needs for the headerless formats; the others carry their own.
HEADERLESS_RATES = {"pcm": 24000, "mulaw": 8000, "alaw": 8000}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(
    quiet_engines: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[openai.AsyncOpenAI, float]]:
    """An OpenAI client on the gateway, and the seconds of PCM the fleet makes for TEXT."""
    voice = JOE_QUIET.name
    async with (
        running_server(pod_config(JOE_QUIET), quiet_engines) as pod,
        running_router([pod], voices=(voice,), default_voice=voice) as router,
        running_gateway(tmp_path_factory.mktemp("gateway"), router.port, workers=0) as gateway,
        stub_for(router) as stub,
    ):
        reference = await stub.Synthesize(
            tts_pb2.TTSRequest(text=TEXT, encoding=tts_pb2.AUDIO_ENCODING_PCM16)
        )
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key="not-checked", max_retries=0
        )
        async with client:
            yield client, reference.audio_seconds


def _seconds(data: bytes, response_format: str) -> float:
    rate, samples = decode(data, response_format, HEADERLESS_RATES.get(response_format, 0))
    assert float(abs(samples).max()) > 0.1, "speech, not silence"
    return samples.size / rate


@pytest.mark.parametrize("response_format", FORMATS)
async def test_every_format_whole_and_streamed_is_the_speech(
    fleet: tuple[openai.AsyncOpenAI, float], response_format: Any
) -> None:
    client, seconds = fleet
    request = {
        "model": "tts-1",
        "voice": "alloy",
        "input": TEXT,
        "response_format": response_format,
    }
    whole = await client.audio.speech.create(**request)
    async with client.audio.speech.with_streaming_response.create(**request) as response:
        streamed = b"".join([chunk async for chunk in response.iter_bytes()])
    for data in (whole.content, streamed):
        assert _seconds(data, response_format) == pytest.approx(seconds, rel=0.1)


async def test_defaults_are_openais_mp3_and_24_khz_pcm(
    fleet: tuple[openai.AsyncOpenAI, float],
) -> None:
    client, seconds = fleet
    default = await client.audio.speech.with_raw_response.create(
        model="tts-1", voice="nova", input=TEXT
    )
    assert default.headers["content-type"] == "audio/mpeg"
    assert _seconds(default.content, "mp3") == pytest.approx(seconds, rel=0.1)
    pcm = await client.audio.speech.with_raw_response.create(
        model="tts-1", voice="nova", input=TEXT, response_format="pcm"
    )
    assert pcm.headers["x-sample-rate"] == "24000"
    assert len(pcm.content) / 2 / 24000 == pytest.approx(seconds, rel=0.01)


async def test_sse_sends_openais_speech_events(fleet: tuple[openai.AsyncOpenAI, float]) -> None:
    client, seconds = fleet
    async with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="coral",
        input=TEXT,
        response_format="opus",
        stream_format="sse",
        instructions="Speak in a cheerful tone.",
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "ignored" in response.headers["x-instructions"]
        events = [
            json.loads(line.removeprefix("data: "))
            async for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    *deltas, done = events
    assert {event["type"] for event in deltas} == {"speech.audio.delta"} and len(deltas) >= 2
    assert done["type"] == "speech.audio.done" and "usage" in done
    audio = b"".join(base64.b64decode(event["audio"]) for event in deltas)
    assert _seconds(audio, "opus") == pytest.approx(seconds, rel=0.1)


async def test_speed_and_errors_come_through_the_sdk(
    fleet: tuple[openai.AsyncOpenAI, float], tmp_path: Path
) -> None:
    client, seconds = fleet
    fast = await client.audio.speech.create(
        model="tts-1", voice="echo", input=TEXT, response_format="pcm", speed=2.0
    )
    assert 0.4 * seconds < len(fast.content) / 2 / 24000 < 0.75 * seconds
    with pytest.raises(openai.BadRequestError) as refused:
        await client.audio.speech.create(model="tts-1", voice="nobody", input=TEXT)
    assert "unknown voice 'nobody'" in str(refused.value)
    with pytest.raises(openai.BadRequestError):
        await client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, speed=4.5)


async def test_word_timestamps_come_as_events_or_with_the_audio_as_json(
    fleet: tuple[openai.AsyncOpenAI, float],
) -> None:
    client, seconds = fleet
    request: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": TEXT}
    async with client.audio.speech.with_streaming_response.create(
        **request, stream_format="sse", extra_body={"word_timestamps": True}
    ) as response:
        events = [
            json.loads(line.removeprefix("data: "))
            async for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "speech.words", "a word comes no later than the audio it starts in"
    assert kinds[-1] == "speech.audio.done" and "speech.audio.delta" in kinds
    streamed = [
        word for event in events if event["type"] == "speech.words" for word in event["words"]
    ]
    whole = await client.audio.speech.with_raw_response.create(
        **request,
        response_format="flac",
        extra_body={"word_timestamps": True, "word_phonemes": True},
    )
    assert whole.headers["content-type"] == "application/json"
    body = whole.http_response.json()
    assert _seconds(base64.b64decode(body["audio"]), "flac") == pytest.approx(seconds, rel=0.1)
    words = body["words"]
    assert (
        [w["word"] for w in words]
        == [w["word"] for w in streamed]
        == [word.strip(",.") for word in TEXT.split()]
    )
    assert all(w["phonemes"] for w in words) and not any(w["phonemes"] for w in streamed)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and words[-1]["end"] == pytest.approx(seconds, abs=0.5)
