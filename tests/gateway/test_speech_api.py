"""OpenAI-compatible POST /v1/audio/speech over real HTTP: streamed WAV or PCM, errors, overload."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import pytest
from audio_checks import pcm16
from job_helpers import running_gateway, sentences
from timed_fleet import SAMPLE_RATE, free_port, running_router, timed_pods, until, words

from ttsfleet.gateway.openai_voices import VoiceMap

SAMPLES_PER_WORD = 320


async def test_wav_streams_with_an_open_ended_header_and_every_word_in_order(
    http: httpx.AsyncClient,
) -> None:
    text = sentences(10)
    body = {"model": "tts-1", "input": text, "voice": "timed", "response_format": "wav"}
    async with http.stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers["x-sample-rate"] == str(SAMPLE_RATE)
        data = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert struct.unpack("<I", data[24:28])[0] == SAMPLE_RATE
    assert data[36:40] == b"data" and data[40:44] == b"\xff\xff\xff\xff"
    assert pcm16(data[44:]).size == len(text.split()) * SAMPLES_PER_WORD


async def test_pcm_is_raw_samples_at_24_khz_and_the_voice_may_be_left_out(
    http: httpx.AsyncClient,
) -> None:
    body = {"model": "tts-1", "input": "one two three", "response_format": "pcm", "speed": 1.5}
    response = await http.post("/v1/audio/speech", json=body)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/pcm"
    assert response.headers["x-sample-rate"] == "24000"
    resampled = 3 * SAMPLES_PER_WORD * 24000 / SAMPLE_RATE
    assert len(response.content) / 2 == pytest.approx(resampled, abs=2)


async def test_openai_voice_names_map_to_fleet_voices(tmp_path: Path) -> None:
    """A configured name goes to its voice, other OpenAI names to the default, others through."""
    voices = ("timed", "second")
    async with (
        timed_pods([0.0], voices=voices) as pods,
        running_router(pods, voices=voices) as router,
        running_gateway(
            tmp_path, router.port, workers=0, openai_voices=VoiceMap({"nova": "second"})
        ) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http,
    ):
        for voice in ("nova", "alloy", "second", "timed"):
            body = {"model": "tts-1", "input": "hello", "voice": voice, "response_format": "pcm"}
            assert (await http.post("/v1/audio/speech", json=body)).status_code == 200
    spoken = {
        voice: pods[0].metrics.registry.get_sample_value(
            "ttsfleet_inference_requests_total",
            {"method": "StreamSynthesize", "voice": voice, "code": "OK"},
        )
        for voice in voices
    }
    assert spoken == {"timed": 2.0, "second": 2.0}


async def test_errors_are_json_in_openais_shape(http: httpx.AsyncClient) -> None:
    unknown = await http.post("/v1/audio/speech", json={"model": "m", "input": "Hi.", "voice": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "voice"
    assert "unknown voice 'x'" in unknown.json()["error"]["message"]
    ogg = await http.post(
        "/v1/audio/speech", json={"model": "m", "input": "Hi.", "response_format": "ogg"}
    )
    assert ogg.status_code == 400 and ogg.json()["error"]["param"] == "response_format"
    missing = await http.post("/v1/audio/speech", json={"input": "Hi."})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"


async def test_streams_past_the_limit_are_429_with_retry_after(tmp_path: Path) -> None:
    async with (
        timed_pods([0.02]) as pods,
        running_router(pods) as router,
        running_gateway(tmp_path, router.port, max_streams=1) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http,
    ):
        body = {"model": "tts-1", "input": words(60), "response_format": "pcm"}
        async with http.stream("POST", "/v1/audio/speech", json=body) as first:
            assert first.status_code == 200
            await anext(first.aiter_bytes())
            refused = await http.post("/v1/audio/speech", json=body)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "overloaded"
        await until(lambda: gateway.app.state.speech_slots.active == 0)
        after = await http.post("/v1/audio/speech", json={**body, "input": "free again"})
        assert after.status_code == 200, "the slot comes back when a stream ends"


async def test_without_a_fleet_speech_is_503_but_jobs_are_still_accepted(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, free_port(), workers=0) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http,
    ):
        speech = await http.post("/v1/audio/speech", json={"model": "m", "input": "Hi."})
        job = await http.post("/v1/jobs", json={"text": "Later.", "voice": "joe"})
    assert speech.status_code == 503 and speech.headers["retry-after"] == "5"
    assert speech.json()["error"]["type"] == "unavailable"
    assert job.status_code == 202, "the queue takes work while the fleet is away"
