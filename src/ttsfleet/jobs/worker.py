"""Runs jobs through the fleet: claim, fan out, store the audio, record the outcome.

While a job runs, a heartbeat renews its lease and records progress; if the
heartbeat finds the claim gone (the lease ran out and another worker took
the job), the work stops and its audio is thrown away, so a job completes
once. The audio goes to the result store as it arrives, under a key unique
to the attempt, and is committed before the job is marked succeeded: a crash
in between leaves an orphan file, never a succeeded job without audio.

Every loop is supervised: an unexpected error (the backend down, a bug) is
logged with the job's id and the loop tries again with backoff; a loop that
keeps failing for `give_up_seconds` ends `run` with LoopFailed, so the
process exits and its supervisor (Kubernetes) restarts it. While the fleet
is away (UNAVAILABLE, RESOURCE_EXHAUSTED), claimed jobs go back without
spending an attempt and no loop claims until a backoff has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
import uuid

from ttsfleet import codecs, logs, tracing
from ttsfleet.audio import wav_file
from ttsfleet.errors import FLEET_AWAY, TTSError
from ttsfleet.jobs.backend import JobBackend
from ttsfleet.jobs.callback import CallbackPolicy, Outbox
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.metrics import JobMetrics
from ttsfleet.jobs.model import AudioFormat, Claim, Job, JobState
from ttsfleet.jobs.storage import ResultStore, ResultWriter

log = logging.getLogger(__name__)

WAV_HEADER_BYTES = 44
# Jobs removed per retention sweep; the next sweep takes the rest.
EXPIRE_BATCH = 500


class LeaseLost(Exception):
    """Another worker holds the job now."""


class LoopFailed(Exception):
    """A worker loop kept failing: the process should exit and be restarted."""


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """A mono 16-bit WAV header for `data_bytes` of samples (written once the size is known)."""
    header = bytearray(wav_file(b"", sample_rate))
    struct.pack_into("<I", header, 4, 36 + data_bytes)
    struct.pack_into("<I", header, 40, data_bytes)
    return bytes(header)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleeps `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))


class FleetGate:
    """Holds a worker's loops off claiming while the fleet is away.

    Each report of the fleet away in a row doubles the wait (RetryPolicy's
    away delays, up to minutes); a job that reaches the fleet resets it.
    """

    def __init__(self, fleet: FleetClient) -> None:
        self._policy = fleet.retry
        self._reports = 0
        self._until = 0.0

    def away(self) -> float:
        """Records the fleet away; the seconds to wait before claiming again."""
        self._reports += 1
        delay = self._policy.away_delay(self._reports)
        self._until = max(self._until, time.monotonic() + delay)
        return delay

    def back(self) -> None:
        self._reports = 0

    async def wait(self, stop: asyncio.Event) -> None:
        await _pause(stop, self._until - time.monotonic())


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
        callbacks: CallbackPolicy | None = None,
        metrics: JobMetrics | None = None,
        give_up_seconds: float = 300.0,
        retention_seconds: float = 0.0,
    ) -> None:
        self.backend = backend
        self.results = results
        self.fleet = fleet
        self.name = name or worker_name()
        self.metrics = metrics or JobMetrics()
        self.outbox = Outbox(callbacks or CallbackPolicy(), self.metrics)
        self.gate = FleetGate(fleet)
        self._concurrency = concurrency
        self._heartbeat = heartbeat_seconds
        self._give_up = give_up_seconds
        self._retention = retention_seconds

    async def close(self) -> None:
        await self.outbox.close()

    async def run(self, stop: asyncio.Event, claim_wait: float = 0.25) -> None:
        """Works until `stop` is set (finishing the jobs in hand) or until cancelled.

        Cancelled, it hands the jobs in hand back to the queue (see `run_once`).
        Raises LoopFailed when a loop could not recover.
        """
        helpers = [asyncio.ensure_future(self.outbox.run())]
        if self._retention > 0:
            helpers.append(asyncio.ensure_future(self._expire(stop)))
        loops = [
            asyncio.ensure_future(self._supervised(stop, claim_wait))
            for _ in range(self._concurrency)
        ]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            await self.outbox.drain(self.outbox.policy.total_seconds)
        finally:
            for task in loops + helpers:
                task.cancel()
            await asyncio.gather(*loops, *helpers, return_exceptions=True)

    async def _supervised(self, stop: asyncio.Event, claim_wait: float) -> None:
        """One loop of claims; errors are retried with backoff until `give_up_seconds`."""
        failures, failing_since = 0, 0.0
        while not stop.is_set():
            await self.gate.wait(stop)
            if stop.is_set():
                return
            try:
                await self.run_once(claim_wait)
                failures = 0
            except Exception as error:
                self.metrics.loop_errors.inc()
                now = time.monotonic()
                failing_since = failing_since if failures else now
                failures += 1
                log.exception(
                    "worker loop failed; retrying",
                    extra={"job": logs.request_id.get() or None, "failures": failures},
                )
                if now - failing_since >= self._give_up:
                    raise LoopFailed(
                        f"failing for {now - failing_since:.0f} s; last error: {error!r}"
                    ) from error
                await _pause(stop, self.fleet.retry.delay(failures))
            finally:
                logs.request_id.set("")
                logs.tenant.set("")

    async def run_once(self, wait: float) -> Job | None:
        """Claims one job (waiting up to `wait` s) and runs it; the job as it ended, or None."""
        claim = await self.backend.claim(self.name, wait)
        if claim is None:
            return None
        logs.request_id.set(claim.job.id)
        logs.tenant.set(claim.job.spec.tenant)
        try:
            with tracing.tracer.start_as_current_span(
                "jobs.run", attributes={"ttsfleet.job_id": claim.job.id}
            ):
                await self._execute(claim)
        except LeaseLost:
            log.warning("job taken over by another worker; dropping this attempt")
        except asyncio.CancelledError:
            # Stopped mid-job: hand it back now, without spending an attempt.
            await self.backend.release(claim, "the worker running it was stopped", 0.0)
            raise
        except Exception as error:
            log.exception("job attempt crashed")
            await self.backend.retry(
                claim,
                f"{type(error).__name__}: {error}",
                self.fleet.retry.delay(claim.job.attempts),
            )
        ended = await self.backend.get(claim.job.id)
        if ended and ended.state.terminal:
            self.metrics.ended.labels(ended.state.value).inc()
            if ended.spec.callback_url:
                self.outbox.put(ended)
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
        key = f"{job.id}-{job.attempts}.{job.spec.format.value}"
        writer = self.results.writer(key)
        try:
            size = await self._with_heartbeat(claim, writer)
        except TTSError as error:
            await writer.abort()
            await self._failed(claim, error)
            return
        except BaseException:
            await writer.abort()
            raise
        self.gate.back()
        if not await self.backend.succeed(claim, key):
            await self.results.delete(key)
            raise LeaseLost
        log.info("job succeeded", extra={"bytes": size})

    async def _failed(self, claim: Claim, error: TTSError) -> None:
        """Fails, hands back, retries or dead-letters an attempt, by what went wrong."""
        job, policy = claim.job, self.fleet.retry
        if error.permanent:
            await self._end(claim, JobState.FAILED, str(error))
        elif error.code in FLEET_AWAY:
            delay = self.gate.away()
            self.metrics.fleet_away.inc()
            log.warning(
                "fleet away; job handed back without spending an attempt",
                extra={"error": str(error), "claiming_again_in": round(delay, 2)},
            )
            if not await self.backend.release(claim, str(error), delay):
                raise LeaseLost
        elif job.attempts >= policy.job_attempts:
            await self._end(
                claim, JobState.DEAD_LETTERED, f"failed {job.attempts} attempts; last: {error}"
            )
        else:
            self.metrics.retried.inc()
            log.warning("job attempt failed; retrying", extra={"error": str(error)})
            await self.backend.retry(claim, str(error), policy.delay(job.attempts))

    async def _end(self, claim: Claim, state: JobState, error: str) -> None:
        log.warning("job ended", extra={"state": state.value, "error": error})
        if not await self.backend.fail(claim, error, state):
            raise LeaseLost

    async def _with_heartbeat(self, claim: Claim, writer: ResultWriter) -> int:
        """Synthesizes the job's text into `writer`, renewing the lease and saving progress
        meanwhile; commits the object and returns its size."""
        progress = [claim.job.pieces_done, claim.job.pieces_total]
        audio_format = claim.job.spec.format
        wav = audio_format is AudioFormat.WAV
        # WAV and PCM are written as they come; the others go through one encoder, which
        # makes one valid file of the whole (pieces encoded alone would be several).
        encoded = audio_format not in (AudioFormat.WAV, AudioFormat.PCM)
        encoder: codecs.Encoder | None = None
        written = 0

        def update(done: int, total: int) -> None:
            progress[:] = [done, total]

        async def sink(data: bytes, rate: int) -> None:
            nonlocal written, encoder
            if encoded:
                encoder = encoder or codecs.Encoder(audio_format.codec, rate, live=False)
                data = await asyncio.to_thread(encoder.encode, data)
            written += len(data)
            await writer.write(data)

        if wav:
            await writer.write(bytes(WAV_HEADER_BYTES))  # the real one once the size is known
        request = claim.job.spec.request(request_id=claim.job.id)
        work = asyncio.ensure_future(
            self.fleet.synthesize(request, update, sink, claim.job.spec.tenant)
        )
        try:
            while not work.done():
                await asyncio.wait((work,), timeout=self._heartbeat)
                if not work.done() and not await self.backend.heartbeat(claim, *progress):
                    raise LeaseLost
            await self.backend.heartbeat(claim, *progress)
            rate = work.result()
            if encoder is not None:
                await writer.write(await asyncio.to_thread(encoder.finish))
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, TTSError):
                    await work
        return await writer.commit(wav_header(rate, written) if wav else b"")

    async def _expire(self, stop: asyncio.Event) -> None:
        """Removes jobs that ended more than the retention time ago, with their audio."""
        period = min(max(self._retention / 10, 1.0), 60.0)
        while not stop.is_set():
            try:
                keys = await self.backend.expire(time.time() - self._retention, EXPIRE_BATCH)
                for key in filter(None, keys):
                    await self.results.delete(key)
                if keys:
                    self.metrics.expired.inc(len(keys))
                    log.info("expired finished jobs", extra={"jobs": len(keys)})
            except Exception:
                log.exception("retention sweep failed; trying again later")
            await _pause(stop, period)
