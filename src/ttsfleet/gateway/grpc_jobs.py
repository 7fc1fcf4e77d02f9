"""`ttsfleet.v1.Jobs`: the job operations as gRPC, over the same JobService as the HTTP API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import NoReturn

import grpc

from ttsfleet import codecs
from ttsfleet.errors import TTSError
from ttsfleet.gateway.auth import Gatekeeper
from ttsfleet.jobs.model import AudioFormat, Job, JobSpec, JobState
from ttsfleet.jobs.service import JobService
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc

Code = grpc.StatusCode
STATES = {
    JobState.QUEUED: ttsfleet_v1_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: ttsfleet_v1_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: ttsfleet_v1_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: ttsfleet_v1_pb2.JOB_STATE_FAILED,
    JobState.DEAD_LETTERED: ttsfleet_v1_pb2.JOB_STATE_DEAD_LETTERED,
}


def job_message(job: Job, created: bool = False) -> ttsfleet_v1_pb2.Job:
    return ttsfleet_v1_pb2.Job(
        id=job.id,
        state=STATES[job.state],
        pieces_done=job.pieces_done,
        pieces_total=job.pieces_total,
        attempts=job.attempts,
        error=job.error,
        encoding=job.spec.format.codec.encoding,
        created_ms=int(job.created_at * 1000),
        updated_ms=int(job.updated_at * 1000),
        created=created,
    )


@contextlib.contextmanager
def _statuses() -> Iterator[list[tuple[grpc.StatusCode, str]]]:
    """Catches the service's refusals as (code, message); the caller aborts with it."""
    refusal: list[tuple[grpc.StatusCode, str]] = []
    try:
        yield refusal
    except TTSError as error:
        named = error.code is Code.INVALID_ARGUMENT and error.field
        refusal.append((error.code, f"{error.field}: {error.message}" if named else error.message))


async def _refuse(
    context: grpc.aio.ServicerContext, refusal: list[tuple[grpc.StatusCode, str]]
) -> NoReturn:
    await context.abort(*refusal[0])
    raise AssertionError("unreachable: abort raises")


class JobsService(ttsfleet_v1_pb2_grpc.JobsServicer):
    """Each call is admitted by the gatekeeper first and acts for that caller only."""

    def __init__(self, jobs: JobService, gatekeeper: Gatekeeper) -> None:
        self._jobs = jobs
        self._gate = gatekeeper

    async def SubmitJob(
        self, request: ttsfleet_v1_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> ttsfleet_v1_pb2.Job:
        with _statuses() as refusal:
            tenant = self._gate.grpc_tenant(context)
            spec = JobSpec(
                text=request.text,
                voice=request.voice,
                speaker=request.speaker,
                format=AudioFormat(codecs.codec(request.encoding, streaming=False).name),
                text_format=request.text_format,
                speed=request.speed or 1.0,
                sample_rate=request.sample_rate,
                callback_url=request.callback_url,
                idempotency_key=request.idempotency_key,
                tenant=tenant,
            )
            job, created = await self._jobs.submit(spec)
            return job_message(job, created)
        await _refuse(context, refusal)

    async def GetJob(
        self, request: ttsfleet_v1_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ttsfleet_v1_pb2.Job:
        with _statuses() as refusal:
            return job_message(await self._jobs.get(request.id, self._gate.grpc_tenant(context)))
        await _refuse(context, refusal)

    async def ListDeadLetters(
        self, request: ttsfleet_v1_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> ttsfleet_v1_pb2.JobList:
        with _statuses() as refusal:
            tenant = self._gate.grpc_tenant(context)
            jobs = await self._jobs.dead_letters(tenant, min(request.limit or 100, 1000))
            return ttsfleet_v1_pb2.JobList(jobs=[job_message(job) for job in jobs])
        await _refuse(context, refusal)

    async def RedriveJob(
        self, request: ttsfleet_v1_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ttsfleet_v1_pb2.Job:
        with _statuses() as refusal:
            tenant = self._gate.grpc_tenant(context)
            return job_message(await self._jobs.redrive(request.id, tenant))
        await _refuse(context, refusal)

    async def GetJobAudio(
        self, request: ttsfleet_v1_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ttsfleet_v1_pb2.JobAudioChunk]:
        with _statuses() as refusal:
            audio = await self._jobs.audio(request.id, self._gate.grpc_tenant(context))
        if refusal:
            await _refuse(context, refusal)
        async for chunk in audio.chunks:
            yield ttsfleet_v1_pb2.JobAudioChunk(chunk=chunk)
