"""The queue-and-store interface every job backend implements, and how one is chosen.

Delivery is at least once, completion exactly once: a claimed job is held by
a lease that the worker renews (`heartbeat`); a worker that dies stops
renewing, and once the lease runs out another worker claims the job again.
Every change a worker makes carries its claim's token, so a worker that lost
its lease (paused, partitioned, presumed dead) can no longer move the job:
its `succeed` returns False and its result is discarded.
"""

from __future__ import annotations

from typing import Protocol

from ttsfleet.jobs.model import Claim, Job, JobSpec, JobState


class JobBackend(Protocol):
    """Durable job records plus the queue that hands them to workers."""

    async def submit(self, spec: JobSpec) -> tuple[Job, bool]:
        """Stores and queues a job; `(job, created)`.

        A known idempotency key (within the spec's tenant) returns its job instead.
        """

    async def get(self, job_id: str) -> Job | None: ...

    async def queued(self, tenant: str | None = None) -> int:
        """Jobs accepted and not yet running (of one tenant, or all): the backlog overload is judged by."""

    async def claim(self, worker: str, wait: float) -> Claim | None:
        """The next job due (or one whose lease ran out), waiting up to `wait` seconds for one."""

    async def heartbeat(self, claim: Claim, pieces_done: int, pieces_total: int) -> bool:
        """Renews the lease and records progress; False when the claim is no longer held."""

    async def succeed(self, claim: Claim, result: str) -> bool:
        """Marks the job succeeded with its result's storage key; False when the claim was lost."""

    async def retry(self, claim: Claim, error: str, delay: float) -> bool:
        """Queues the job again after `delay` seconds, keeping the error."""

    async def release(self, claim: Claim, error: str, delay: float) -> bool:
        """Queues the job again after `delay` seconds without counting the attempt.

        For attempts that never had a fair chance: the fleet was away, or the
        worker was stopped.
        """

    async def fail(self, claim: Claim, error: str, state: JobState) -> bool:
        """Ends the job as FAILED or DEAD_LETTERED with its last error."""

    async def dead_letters(self, tenant: str | None, limit: int) -> list[Job]:
        """Dead-lettered jobs (of one tenant, or all), the most recent first."""

    async def redrive(self, job_id: str) -> bool:
        """Queues a dead-lettered job again with fresh attempts; False if it is not dead-lettered."""

    async def expire(self, before: float, limit: int) -> list[str]:
        """Removes up to `limit` jobs that ended before `before`; their result keys, to delete
        ("" for a job without audio)."""

    async def close(self) -> None: ...


async def open_backend(url: str, lease_seconds: float = 30.0) -> JobBackend:
    """A backend from a URL: `redis://host:port/db` or `sqlite:///path/to/jobs.db` (or a path)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ttsfleet.jobs.redis_backend import RedisBackend

        return await RedisBackend.connect(url, lease_seconds)
    from ttsfleet.jobs.sqlite_backend import SqliteBackend

    return await SqliteBackend.open(url.removeprefix("sqlite://"), lease_seconds)
