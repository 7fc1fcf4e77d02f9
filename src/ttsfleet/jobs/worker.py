"""Runs jobs through the fleet: claim, fan out, store the audio, record the outcome.

While a job runs, a heartbeat renews its lease and records progress; if the
heartbeat finds the claim gone (the lease ran out and another worker took
the job), the work stops and its audio is thrown away, so a job completes
once. The result is stored under a key unique to the attempt before the job
is marked succeeded: a crash in between leaves an orphan file, never a
succeeded job without audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

import httpx

from ttsfleet import logs
from ttsfleet.audio import wav_file
from ttsfleet.errors import TTSError
from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.callback import notify
from ttsfleet.jobs.fleet_client import FleetClient, Speech
from ttsfleet.jobs.model import AudioFormat, Claim, Job, JobState
from ttsfleet.jobs.storage import ResultStore

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker holds the job now."""


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims jobs from a backend and runs up to `concurrency` of them at once."""

    def __init__(
        self,
        backend: JobBackend,
        results: ResultStore,
        fleet: FleetClient,
        *,
        name: str = "",
        concurrency: int = 1,
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self.backend = backend
        self.results = results
        self.fleet = fleet
        self.name = name or worker_name()
        self._concurrency = concurrency
        self._heartbeat = heartbeat_seconds
        self._http = httpx.AsyncClient(timeout=10.0)

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, stop: asyncio.Event, claim_wait: float = 0.25) -> None:
        """Works until `stop` is set (finishing the jobs in hand) or until cancelled.

        Cancelled, it hands the jobs in hand back to the queue (see `run_once`).
        """

        async def loop() -> None:
            while not stop.is_set():
                await self.run_once(claim_wait)

        await asyncio.gather(*(loop() for _ in range(self._concurrency)))

    async def run_once(self, wait: float) -> Job | None:
        """Claims one job (waiting up to `wait` s) and runs it; the job as it ended, or None."""
        claim = await self.backend.claim(self.name, wait)
        if claim is None:
            return None
        logs.request_id.set(claim.job.id)
        try:
            await self._execute(claim)
        except LeaseLost:
            log.warning("job taken over by another worker; dropping this attempt")
        except Exception as error:
            log.exception("job attempt crashed")
            await self.backend.retry(
                claim,
                f"{type(error).__name__}: {error}",
                self.fleet.retry.delay(claim.job.attempts),
            )
        except asyncio.CancelledError:
            # Stopped mid-job: hand it back now rather than when the lease runs out.
            await self.backend.retry(claim, "the worker running it was stopped", 0.0)
            raise
        ended = await self.backend.get(claim.job.id)
        if ended and ended.state.terminal and ended.spec.callback_url:
            await notify(self._http, ended, self.fleet.retry)
        return ended

    async def _execute(self, claim: Claim) -> None:
        job, policy = claim.job, self.fleet.retry
        if job.attempts > policy.job_attempts:
            await self._end(
                claim,
                JobState.DEAD_LETTERED,
                f"gave up after {job.attempts - 1} attempts; last error: {job.error}",
            )
            return
        log.info("job started", extra={"attempt": job.attempts, "worker": self.name})
        try:
            speech = await self._with_heartbeat(claim)
        except TTSError as error:
            if error.permanent:
                await self._end(claim, JobState.FAILED, str(error))
            elif job.attempts >= policy.job_attempts:
                await self._end(
                    claim, JobState.DEAD_LETTERED, f"failed {job.attempts} attempts; last: {error}"
                )
            else:
                delay = policy.delay(job.attempts)
                log.warning("job attempt failed; retrying", extra={"error": str(error)})
                await self.backend.retry(claim, str(error), delay)
            return
        data = (
            speech.pcm
            if job.spec.format is AudioFormat.PCM
            else wav_file(speech.pcm, speech.sample_rate)
        )
        key = f"{job.id}-{job.attempts}.{job.spec.format.value}"
        await self.results.put(key, data)
        if not await self.backend.succeed(claim, key):
            await self.results.delete(key)
            raise LeaseLost
        log.info("job succeeded", extra={"bytes": len(data), "sample_rate": speech.sample_rate})

    async def _end(self, claim: Claim, state: JobState, error: str) -> None:
        log.warning("job ended", extra={"state": state.value, "error": error})
        if not await self.backend.fail(claim, error, state):
            raise LeaseLost

    async def _with_heartbeat(self, claim: Claim) -> Speech:
        """Synthesizes the job's text, renewing the lease and saving progress meanwhile."""
        progress = [claim.job.pieces_done, claim.job.pieces_total]

        def update(done: int, total: int) -> None:
            progress[:] = [done, total]

        request = claim.job.spec.request(request_id=claim.job.id)
        work = asyncio.ensure_future(self.fleet.synthesize(request, update))
        try:
            while not work.done():
                await asyncio.wait((work,), timeout=self._heartbeat)
                if not work.done() and not await self.backend.heartbeat(claim, *progress):
                    raise LeaseLost
            await self.backend.heartbeat(claim, *progress)
            return work.result()
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, TTSError):
                    await work
