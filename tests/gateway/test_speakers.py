"""A speaker chosen at the front door reaches the pod: router, OpenAI speech, HTTP and gRPC jobs.

A real pod runs the multi-speaker voice (joe's with speaker conditioning,
noise off, so the same request always gives the same bytes) behind the
router and the gateway, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from audio_checks import read_wav
from job_helpers import finished, running_gateway
from multi_speaker_voice import SPEAKERS, build_voice, voice
from timed_fleet import running_router
from voices import load_engines, pod_config, running_server

from ttsfleet.manifests import Voice
from ttsfleet.proto import tts_pb2, tts_pb2_grpc, ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc

pytestmark = pytest.mark.voice

TEXT = "Good morning. The fleet speaks with many voices."
V1 = ttsfleet_v1_pb2


@dataclass
class Fleet:
    address: str  # the router's
    router: tts_pb2_grpc.TTSServiceStub
    http: httpx.AsyncClient
    jobs: ttsfleet_v1_pb2_grpc.JobsStub


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Voice:
    return voice(build_voice(tmp_path_factory.mktemp("trio")), "piper-onnx")


@pytest.fixture(scope="module")
def engines(trio: Voice) -> dict[str, Any]:
    return load_engines(trio)


@pytest.fixture
async def fleet(trio: Voice, engines: dict[str, Any], tmp_path: Path) -> AsyncIterator[Fleet]:
    async with contextlib.AsyncExitStack() as stack:
        pod = await stack.enter_async_context(running_server(pod_config(trio), engines))
        router = await stack.enter_async_context(
            running_router([pod], voices=("trio",), default_voice="trio")
        )
        gateway = await stack.enter_async_context(running_gateway(tmp_path, router.port))
        channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{router.port}")
        )
        jobs_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}")
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=60)
        )
        yield Fleet(
            f"127.0.0.1:{router.port}",
            tts_pb2_grpc.TTSServiceStub(channel),
            http,
            ttsfleet_v1_pb2_grpc.JobsStub(jobs_channel),
        )


async def spoken(fleet: Fleet, speaker: str, sample_rate: int = 0) -> bytes:
    """PCM16 of TEXT by `speaker`, streamed through the router."""
    call = fleet.router.StreamSynthesize(
        tts_pb2.TTSRequest(text=TEXT, speaker=speaker, sample_rate=sample_rate)
    )
    return b"".join([chunk.chunk async for chunk in call])


async def test_the_router_lists_and_passes_speakers(fleet: Fleet) -> None:
    listed = await fleet.router.ListVoices(tts_pb2.ListVoicesRequest())
    (trio,) = listed.voices
    assert [s.name for s in trio.speakers] == list(SPEAKERS)
    bo = await spoken(fleet, "bo")
    assert bo == await spoken(fleet, "1")
    assert bo != await spoken(fleet, "ada")


async def test_the_say_command_takes_a_speaker(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "bo.wav"
    command = [sys.executable, "-m", "ttsfleet.cli", "say", TEXT, "-o", str(out)]
    process = await asyncio.create_subprocess_exec(
        *command, "--address", fleet.address, "--speaker", "bo"
    )
    assert await asyncio.wait_for(process.wait(), 60) == 0
    rate, samples = read_wav(out.read_bytes())
    assert rate == 22050 and samples.tobytes() == await spoken(fleet, "bo")


async def test_openai_speech_takes_a_speaker(fleet: Fleet) -> None:
    body = {"model": "tts-1", "input": TEXT, "voice": "trio", "response_format": "pcm"}
    response = await fleet.http.post("/v1/audio/speech", json={**body, "speaker": "bo"})
    assert response.status_code == 200
    assert response.content == await spoken(fleet, "bo", sample_rate=24000)
    unknown = await fleet.http.post("/v1/audio/speech", json={**body, "speaker": "zed"})
    assert unknown.status_code == 400
    assert "unknown speaker 'zed' for voice 'trio'" in unknown.json()["error"]["message"]


async def test_jobs_carry_the_speaker(fleet: Fleet) -> None:
    expected = await spoken(fleet, "cy")
    submitted = await fleet.http.post(
        "/v1/jobs", json={"text": TEXT, "speaker": "cy", "format": "pcm"}
    )
    assert submitted.status_code == 202 and submitted.json()["speaker"] == "cy"
    status = await finished(fleet.http, submitted.json()["id"], seconds=60)
    assert status["state"] == "succeeded", status
    assert (await fleet.http.get(status["audio_url"])).content == expected

    job = await fleet.jobs.SubmitJob(
        V1.SubmitJobRequest(text=TEXT, speaker="2", encoding=tts_pb2.AUDIO_ENCODING_PCM16)
    )
    assert (await finished(fleet.http, job.id, seconds=60))["state"] == "succeeded"
    audio = fleet.jobs.GetJobAudio(V1.GetJobRequest(id=job.id))
    assert b"".join([chunk.chunk async for chunk in audio]) == expected

    wrong = await fleet.http.post("/v1/jobs", json={"text": TEXT, "speaker": "zed"})
    status = await finished(fleet.http, wrong.json()["id"], seconds=60)
    assert (status["state"], status["attempts"]) == ("failed", 1), "no retry can help"
    assert "unknown speaker 'zed' for voice 'trio'" in status["error"]
