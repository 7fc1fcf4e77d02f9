"""ttsfleet.v1.Jobs over real gRPC: the same operations as the HTTP job endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from audio_checks import read_wav
from job_helpers import running_gateway, sentences

from ttsfleet.gateway.server import Gateway
from ttsfleet.proto import tts_pb2, ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc

V1 = ttsfleet_v1_pb2


@pytest.fixture
async def jobs(gateway: Gateway) -> AsyncIterator[ttsfleet_v1_pb2_grpc.JobsStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield ttsfleet_v1_pb2_grpc.JobsStub(channel)


async def test_submit_poll_and_collect_a_job(jobs: ttsfleet_v1_pb2_grpc.JobsStub) -> None:
    text = sentences(8)
    job = await jobs.SubmitJob(V1.SubmitJobRequest(text=text, idempotency_key="g-1"))
    assert job.created and job.state in (V1.JOB_STATE_QUEUED, V1.JOB_STATE_RUNNING)
    again = await jobs.SubmitJob(V1.SubmitJobRequest(text=text, idempotency_key="g-1"))
    assert (again.id, again.created) == (job.id, False)
    for _ in range(500):
        status = await jobs.GetJob(V1.GetJobRequest(id=job.id))
        if status.state == V1.JOB_STATE_SUCCEEDED:
            break
        await asyncio.sleep(0.02)
    assert status.state == V1.JOB_STATE_SUCCEEDED
    assert (
        status.encoding == tts_pb2.AUDIO_ENCODING_WAV and status.pieces_done == status.pieces_total
    )
    audio = b"".join([c.chunk async for c in jobs.GetJobAudio(V1.GetJobRequest(id=job.id))])
    assert read_wav(audio)[1].size == len(text.split()) * 320


async def test_refusals_are_grpc_status_codes(jobs: ttsfleet_v1_pb2_grpc.JobsStub) -> None:
    cases = [
        (
            jobs.SubmitJob(V1.SubmitJobRequest(text=" ")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "text: text is empty",
        ),
        (
            jobs.SubmitJob(V1.SubmitJobRequest(text="Hi.", speed=9)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "speed",
        ),
        (jobs.GetJob(V1.GetJobRequest(id="nope")), grpc.StatusCode.NOT_FOUND, "no job 'nope'"),
    ]
    for call, code, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() is code and message in (error.value.details() or "")


async def test_audio_of_an_unfinished_job_is_failed_precondition(
    pods_and_router: int, tmp_path: Path
) -> None:
    async with (
        running_gateway(tmp_path, pods_and_router, workers=0) as gateway,
        grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
    ):
        stub = ttsfleet_v1_pb2_grpc.JobsStub(channel)
        job = await stub.SubmitJob(
            V1.SubmitJobRequest(text="Wait.", encoding=tts_pb2.AUDIO_ENCODING_PCM16)
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            _ = [c async for c in stub.GetJobAudio(V1.GetJobRequest(id=job.id))]
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert job.encoding == tts_pb2.AUDIO_ENCODING_PCM16
