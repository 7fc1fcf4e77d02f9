"""The job operations callers see, shared by the HTTP gateway and the gRPC Jobs service.

Each front end only translates: requests into a JobSpec, and TTSErrors
into its own status codes (ttsfleet.errors).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from ttsfleet.errors import TTSError
from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.model import Job, JobSpec, JobState
from ttsfleet.jobs.storage import ResultStore

# Seconds the list of voices is trusted before the fleet is asked again.
VOICES_TTL = 10.0


@dataclass(frozen=True)
class JobAudio:
    job: Job
    size: int
    chunks: AsyncIterator[bytes]


class JobService:
    """Submit, status and result, with the checks worth making before a job is queued."""

    def __init__(
        self,
        backend: JobBackend,
        results: ResultStore,
        fleet: FleetClient,
        max_queued: int = 10_000,
        retry_after: int = 5,
        max_queued_per_tenant: int = 0,
    ) -> None:
        self.backend = backend
        self.results = results
        self._fleet = fleet
        self._max_queued = max_queued
        self._max_per_tenant = max_queued_per_tenant
        self._retry_after = retry_after
        self._voices: frozenset[str] = frozenset()
        self._voices_at = float("-inf")

    async def submit(self, spec: JobSpec) -> tuple[Job, bool]:
        """Queues the job (or finds the one its idempotency key made, within its tenant).

        Raises TTSError: INVALID_ARGUMENT (an unknown voice), RESOURCE_EXHAUSTED (the
        backlog, or the tenant's, is full), ALREADY_EXISTS (the idempotency key made a
        job of a different request).
        """
        await self._check_voice(spec.voice)
        if await self.backend.queued() >= self._max_queued:
            raise self._full(f"{self._max_queued} jobs are waiting already; retry later")
        if self._max_per_tenant and await self.backend.queued(spec.tenant) >= self._max_per_tenant:
            raise self._full(f"{self._max_per_tenant} of your jobs are waiting; retry later")
        job, created = await self.backend.submit(spec)
        if not created and job.spec != spec:
            raise TTSError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"idempotency key {spec.idempotency_key!r} was used for a different request "
                f"(job {job.id}); use a new key for a new request",
                field="idempotency_key",
            )
        return job, created

    def _full(self, message: str) -> TTSError:
        return TTSError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, retry_after=self._retry_after)

    async def get(self, job_id: str, tenant: str) -> Job:
        """The tenant's job; another tenant's is NOT_FOUND, as if it did not exist."""
        job = await self.backend.get(job_id)
        if job is None or job.spec.tenant != tenant:
            raise TTSError(grpc.StatusCode.NOT_FOUND, f"no job {job_id!r}")
        return job

    async def dead_letters(self, tenant: str, limit: int = 100) -> list[Job]:
        return await self.backend.dead_letters(tenant, limit)

    async def dead_letter(self, job_id: str, tenant: str) -> Job:
        """One of the tenant's dead letters; NOT_FOUND for any other job."""
        job = await self.get(job_id, tenant)
        if job.state is not JobState.DEAD_LETTERED:
            raise TTSError(grpc.StatusCode.NOT_FOUND, f"job {job_id} is not dead-lettered")
        return job

    async def redrive(self, job_id: str, tenant: str) -> Job:
        """Queues the tenant's dead-lettered job again with fresh attempts."""
        job = await self.get(job_id, tenant)
        if not await self.backend.redrive(job.id):
            raise TTSError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"job {job.id} is {job.state.value}; only dead-lettered jobs are re-driven",
            )
        return await self.get(job_id, tenant)

    async def audio(self, job_id: str, tenant: str) -> JobAudio:
        job = await self.get(job_id, tenant)
        if job.state is not JobState.SUCCEEDED:
            raise TTSError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"job {job.id} is {job.state.value}; its audio exists once it has succeeded",
            )
        size = await self.results.size(job.result)
        return JobAudio(job, size, self.results.read(job.result))

    async def _check_voice(self, voice: str) -> None:
        """Refuses a voice the fleet does not serve; when the fleet cannot be asked, accepts it.

        A queue exists to take work while the fleet is away: the worker will
        fail the job then if the voice is still unknown.
        """
        if not voice:
            return
        if time.monotonic() - self._voices_at > VOICES_TTL:
            try:
                listed = await self._fleet.voices()
            except grpc.aio.AioRpcError:
                return
            self._voices = frozenset(v.name for v in listed.voices)
            self._voices_at = time.monotonic()
        if voice not in self._voices:
            raise TTSError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown voice {voice!r}; this fleet serves: {', '.join(sorted(self._voices))}",
                field="voice",
            )
