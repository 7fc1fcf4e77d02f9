"""The backend contract, run against both backends: embedded SQLite and a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from ttsfleet.jobs.backend import JobBackend, open_backend
from ttsfleet.jobs.model import LOST, JobSpec, JobState

SPEC = JobSpec(text="Hello there.", voice="timed")


async def test_submitted_jobs_are_queued_and_claimed_in_order(backend: JobBackend) -> None:
    first, created = await backend.submit(SPEC)
    second, _ = await backend.submit(JobSpec(text="Second."))
    assert created and first.state is JobState.QUEUED and first.spec == SPEC
    assert await backend.queued() == 2
    claim = await backend.claim("w1", wait=1.0)
    assert claim is not None and claim.job.id == first.id
    assert (claim.job.state, claim.job.attempts) == (JobState.RUNNING, 1)
    assert await backend.queued() == 1
    assert (await backend.claim("w2", wait=1.0)).job.id == second.id  # type: ignore[union-attr]
    assert await backend.claim("w3", wait=0.05) is None


async def test_one_idempotency_key_never_makes_two_jobs(backend: JobBackend) -> None:
    spec = JobSpec(text="Once only.", idempotency_key="order-42")
    results = await asyncio.gather(*(backend.submit(spec) for _ in range(8)))
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await backend.queued() == 1


async def test_success_is_recorded_once_and_only_by_the_holder(backend: JobBackend) -> None:
    job, _ = await backend.submit(SPEC)
    claim = await backend.claim("w1", wait=1.0)
    assert claim is not None
    assert await backend.heartbeat(claim, 2, 5)
    assert (await backend.get(job.id)).pieces_done == 2  # type: ignore[union-attr]
    assert await backend.succeed(claim, "result-key")
    assert not await backend.succeed(claim, "again"), "a finished claim holds nothing"
    done = await backend.get(job.id)
    assert done is not None and (done.state, done.result) == (JobState.SUCCEEDED, "result-key")
    assert await backend.claim("w2", wait=0.05) is None


async def test_an_expired_lease_passes_the_job_to_another_worker(backend: JobBackend) -> None:
    job, _ = await backend.submit(SPEC)
    lost = await backend.claim("dead-worker", wait=1.0)
    assert lost is not None
    assert await backend.claim("w2", wait=0.05) is None, "held while the lease runs"
    taken = await backend.claim("w2", wait=5.0)
    assert taken is not None and taken.job.id == job.id
    assert taken.job.attempts == 2 and LOST in taken.job.error
    assert not await backend.heartbeat(lost, 1, 1), "the old holder learns it lost the job"
    assert not await backend.succeed(lost, "stale")
    assert await backend.succeed(taken, "fresh")
    assert (await backend.get(job.id)).result == "fresh"  # type: ignore[union-attr]


async def test_heartbeats_keep_a_slow_job_with_its_worker(backend: JobBackend) -> None:
    await backend.submit(SPEC)
    claim = await backend.claim("w1", wait=1.0)
    assert claim is not None
    for _ in range(4):
        await asyncio.sleep(0.3)
        assert await backend.heartbeat(claim, 0, 1)
    assert await backend.claim("w2", wait=0.05) is None


async def test_a_retry_waits_for_its_delay_and_keeps_the_error(backend: JobBackend) -> None:
    job, _ = await backend.submit(SPEC)
    claim = await backend.claim("w1", wait=1.0)
    assert claim is not None
    assert await backend.retry(claim, "UNAVAILABLE: no pod", delay=0.3)
    queued = await backend.get(job.id)
    assert queued is not None and (queued.state, queued.error) == (
        JobState.QUEUED,
        "UNAVAILABLE: no pod",
    )
    assert await backend.claim("w1", wait=0.0) is None, "not before its delay"
    again = await backend.claim("w1", wait=5.0)
    assert again is not None and again.job.attempts == 2


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.DEAD_LETTERED])
async def test_failures_end_the_job_with_its_error(backend: JobBackend, state: JobState) -> None:
    job, _ = await backend.submit(SPEC)
    claim = await backend.claim("w1", wait=1.0)
    assert claim is not None
    assert await backend.fail(claim, "NOT_FOUND: unknown voice", state)
    ended = await backend.get(job.id)
    assert ended is not None and (ended.state, ended.error) == (state, "NOT_FOUND: unknown voice")
    assert ended.public()["audio_url"] is None


async def test_jobs_outlive_the_backend_connection(backend: JobBackend, backend_url: str) -> None:
    job, _ = await backend.submit(JobSpec(text="Durable.", idempotency_key="k"))
    await backend.close()
    reopened = await open_backend(backend_url)
    try:
        assert (await reopened.get(job.id)) == job
        assert (await reopened.submit(JobSpec(text="Durable.", idempotency_key="k")))[
            0
        ].id == job.id
        claim = await reopened.claim("w", wait=1.0)
        assert claim is not None and claim.job.id == job.id
    finally:
        await reopened.close()
    await backend.close()  # the fixture closes it again: harmless


async def test_a_handed_back_job_keeps_its_attempts(backend: JobBackend) -> None:
    job, _ = await backend.submit(SPEC)
    claim = await backend.claim("w1", wait=1.0)
    assert claim is not None and claim.job.attempts == 1
    assert await backend.release(claim, "UNAVAILABLE: no router", 0.0)
    back = await backend.get(job.id)
    assert back is not None and (back.state, back.attempts) == (JobState.QUEUED, 0)
    assert back.error == "UNAVAILABLE: no router"
    again = await backend.claim("w2", wait=1.0)
    assert again is not None and again.job.attempts == 1


async def test_dead_letters_are_listed_per_tenant_and_redriven(backend: JobBackend) -> None:
    mine = [(await backend.submit(JobSpec(text=f"Mine {i}.", tenant="a")))[0] for i in range(2)]
    theirs, _ = await backend.submit(JobSpec(text="Theirs.", tenant="b"))
    assert (await backend.queued("a"), await backend.queued("b"), await backend.queued()) == (
        2,
        1,
        3,
    )
    for _ in range(3):
        claim = await backend.claim("w", wait=1.0)
        assert claim is not None
        assert await backend.fail(claim, f"last: {claim.job.id}", JobState.DEAD_LETTERED)
        await asyncio.sleep(0.01)  # distinct end times: most recent first
    listed = await backend.dead_letters("a", 10)
    assert [j.id for j in listed] == [mine[1].id, mine[0].id]
    assert [j.id for j in await backend.dead_letters("b", 10)] == [theirs.id]
    assert len(await backend.dead_letters(None, 2)) == 2
    assert await backend.redrive(mine[0].id)
    assert not await backend.redrive(mine[0].id), "queued now, not dead-lettered"
    assert await backend.queued("a") == 1
    redriven = await backend.get(mine[0].id)
    assert redriven is not None and (redriven.state, redriven.attempts) == (JobState.QUEUED, 0)
    assert [j.id for j in await backend.dead_letters("a", 10)] == [mine[1].id]
    claim = await backend.claim("w", wait=1.0)
    assert claim is not None and claim.job.id == mine[0].id


async def test_idempotency_keys_belong_to_their_tenant(backend: JobBackend) -> None:
    first, created_a = await backend.submit(JobSpec(text="Hi.", idempotency_key="k", tenant="a"))
    second, created_b = await backend.submit(JobSpec(text="Hi.", idempotency_key="k", tenant="b"))
    again, created = await backend.submit(JobSpec(text="Hi.", idempotency_key="k", tenant="a"))
    assert created_a and created_b and not created
    assert first.id != second.id and again.id == first.id


async def test_ended_jobs_expire_and_others_stay(backend: JobBackend) -> None:
    ended, _ = await backend.submit(JobSpec(text="Done.", idempotency_key="gone"))
    waiting, _ = await backend.submit(SPEC)
    claim = await backend.claim("w", wait=1.0)
    assert claim is not None and claim.job.id == ended.id
    assert await backend.succeed(claim, "audio-key")
    assert await backend.expire(0.0, 10) == [], "ended after the cut-off"
    assert await backend.expire(time.time() + 1, 10) == ["audio-key"]
    assert await backend.get(ended.id) is None
    assert await backend.get(waiting.id) is not None, "a queued job never expires"
    fresh, created = await backend.submit(JobSpec(text="Done.", idempotency_key="gone"))
    assert created and fresh.id != ended.id, "its idempotency key went with it"
