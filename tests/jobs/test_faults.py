"""Faults, for real on 127.0.0.1: the router gone for 20 s under a backlog, Redis restarted
mid-run (with and without its data), a worker whose backend never comes back, a stopped
worker, retention, and the largest job through a `ttsfleet worker` process whose memory
is measured."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from job_helpers import sentences, worker_for
from redis_server import start_redis
from timed_fleet import VOICE, free_port, running_router, timed_pods

from ttsfleet.jobs.backend import JobBackend, open_backend
from ttsfleet.jobs.model import MAX_JOB_TEXT, Job, JobSpec, JobState
from ttsfleet.jobs.retry import RetryPolicy
from ttsfleet.jobs.sqlite_backend import SqliteBackend
from ttsfleet.jobs.storage import DirectoryStore
from ttsfleet.router.server import RouterServer

# The issue's settings, under which 4 s without a router dead-lettered a job.
ISSUE_RETRY = RetryPolicy(
    piece_attempts=3, job_attempts=3, backoff_seconds=0.25, max_backoff_seconds=1.0,
    max_away_seconds=4.0,
)  # fmt: skip


async def all_ended(backend: JobBackend, ids: list[str], seconds: float) -> list[Job]:
    """Polls (bounded) until every job has ended; the jobs as they are then."""
    give_up = time.monotonic() + seconds
    while True:
        jobs = [await backend.get(job_id) for job_id in ids]
        if all(job and job.state.terminal for job in jobs) or time.monotonic() > give_up:
            return [job for job in jobs if job]
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_twenty_jobs_wait_out_a_20_second_router_outage(tmp_path: Path) -> None:
    port = free_port()
    backend = await SqliteBackend.open(tmp_path / "jobs.db")
    stop = asyncio.Event()
    async with timed_pods([0.002, 0.002]) as pods:
        ids = [
            (await backend.submit(JobSpec(text=sentences(6), voice=VOICE)))[0].id for _ in range(20)
        ]
        async with worker_for(
            backend, tmp_path, f"127.0.0.1:{port}", ISSUE_RETRY, concurrency=4
        ) as worker:
            running = asyncio.ensure_future(worker.run(stop))
            await asyncio.sleep(20)  # no router on the port all this time
            during = [await backend.get(job_id) for job_id in ids]
            async with running_router(pods, port=port):
                back = time.monotonic()
                jobs = await all_ended(backend, ids, 60)
                recovered = time.monotonic() - back
            stop.set()
            await asyncio.wait_for(running, 10)
    await backend.close()
    away = worker.metrics.registry.get_sample_value("ttsfleet_jobs_fleet_away_total") or 0
    # Still waiting, no attempt spent (one may be in a worker's hands, trying, right now).
    assert all(
        job and (job.state, job.attempts) in ((JobState.QUEUED, 0), (JobState.RUNNING, 1))
        for job in during
    ), [(j.state, j.attempts) for j in during if j]
    assert [(j.state, j.attempts) for j in jobs] == [(JobState.SUCCEEDED, 1)] * 20
    assert away >= 4, away  # handed back, not spent
    assert recovered < 15, f"{recovered:.1f} s after the router came back"


async def test_jobs_survive_redis_restarts_with_and_without_its_data(
    router: RouterServer, tmp_path: Path
) -> None:
    data, port = tmp_path / "redis", free_port()
    data.mkdir()
    redis_process = start_redis(data, port)
    url = f"redis://127.0.0.1:{port}/0"
    backend = await open_backend(url, lease_seconds=1.0)
    stop = asyncio.Event()
    try:
        ids = [
            (await backend.submit(JobSpec(text=sentences(30), voice=VOICE)))[0].id
            for _ in range(10)
        ]
        async with worker_for(
            backend, tmp_path / "results", f"127.0.0.1:{router.port}", concurrency=2
        ) as worker:
            running = asyncio.ensure_future(worker.run(stop))

            async def some_done() -> bool:
                jobs = [await backend.get(i) for i in ids]
                return any(job and job.state is JobState.SUCCEEDED for job in jobs)

            assert await eventually(some_done, 20)
            redis_process.terminate()  # mid-run: other jobs are running or queued
            redis_process.wait(10)
            await asyncio.sleep(2)
            redis_process = start_redis(data, port)
            jobs = await all_ended(backend, ids, 60)
            assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 10
            # Now a Redis that lost everything: the consumer group is gone (NOGROUP).
            redis_process.terminate()
            redis_process.wait(10)
            shutil.rmtree(data)
            data.mkdir()
            redis_process = start_redis(data, port)
            fresh, _ = await backend.submit(JobSpec(text="After the loss.", voice=VOICE))
            after = await all_ended(backend, [fresh.id], 30)
            stop.set()
            await asyncio.wait_for(running, 10)
        errors = worker.metrics.registry.get_sample_value("ttsfleet_worker_loop_errors_total")
        assert [j.state for j in after] == [JobState.SUCCEEDED]
        assert errors and errors >= 1
    finally:
        await backend.close()
        redis_process.terminate()
        redis_process.wait(10)


async def test_a_worker_whose_backend_stays_gone_exits_non_zero(tmp_path: Path) -> None:
    data, port = tmp_path / "redis", free_port()
    data.mkdir()
    redis_process = start_redis(data, port)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ttsfleet.cli", "worker",
        "--backend", f"redis://127.0.0.1:{port}/0", "--router", f"127.0.0.1:{free_port()}",
        "--results", str(tmp_path / "results"), "--give-up-seconds", "2",
        "--metrics-port", "-1", "--log-format", "text",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(3)  # claiming (an empty queue) meanwhile
        assert worker.returncode is None
        redis_process.terminate()
        redis_process.wait(10)
        gone = time.monotonic()
        _, stderr = await asyncio.wait_for(worker.communicate(), 60)
        exited = time.monotonic() - gone
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    log = stderr.decode()
    assert worker.returncode == 1, log[-2000:]
    assert "worker loop failed; retrying" in log
    assert "worker loop could not recover; exiting" in log
    assert 2 <= exited < 30, exited


async def test_a_stopped_worker_hands_its_job_back_without_an_attempt(
    backend: JobBackend, tmp_path: Path
) -> None:
    async with timed_pods([0.02]) as pods, running_router(pods) as router:
        job, _ = await backend.submit(JobSpec(text=sentences(20, words_each=10), voice=VOICE))
        async with worker_for(backend, tmp_path, f"127.0.0.1:{router.port}") as worker:
            running = asyncio.ensure_future(worker.run(asyncio.Event()))

            async def started() -> bool:
                held = await backend.get(job.id)
                return held is not None and held.pieces_done >= 1

            assert await eventually(started, 20)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    back = await backend.get(job.id)
    assert back is not None and (back.state, back.attempts) == (JobState.QUEUED, 0)
    assert back.error == "the worker running it was stopped"


async def test_finished_jobs_and_their_audio_expire(
    backend: JobBackend, router: RouterServer, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path)
    stop = asyncio.Event()
    job, _ = await backend.submit(JobSpec(text="Short lived.", voice=VOICE))
    async with worker_for(
        backend, tmp_path, f"127.0.0.1:{router.port}", retention_seconds=0.5
    ) as worker:
        running = asyncio.ensure_future(worker.run(stop))
        [done] = await all_ended(backend, [job.id], 10)
        assert done.state is JobState.SUCCEEDED and await store.size(done.result) > 0

        async def gone() -> bool:
            audio = tmp_path / done.result
            return await backend.get(job.id) is None and not await asyncio.to_thread(audio.exists)

        assert await eventually(gone, 10)
        stop.set()
        await asyncio.wait_for(running, 10)
    with pytest.raises(KeyError):
        await store.size(done.result)
    assert worker.metrics.registry.get_sample_value("ttsfleet_jobs_expired_total") == 1


def _memory_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


# 800 samples a word: the largest job is about 100 MB of audio.
SAMPLES_PER_WORD = 800
# The worker may grow by this much while making it: less than half the audio.
PEAK_GROWTH_MIB = 48


async def test_the_largest_job_keeps_the_worker_s_memory_bounded(tmp_path: Path) -> None:
    words = MAX_JOB_TEXT // 3
    text = " ".join("ab" if (i + 1) % 10 else "ab." for i in range(words))[:MAX_JOB_TEXT]
    assert len(text) <= MAX_JOB_TEXT
    metrics_port = free_port()
    async with (
        timed_pods([0.0, 0.0], samples_per_chunk=SAMPLES_PER_WORD, queue_limit=256) as pods,
        running_router(pods) as router,
    ):
        backend = await SqliteBackend.open(tmp_path / "jobs.db")
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ttsfleet.cli", "worker",
            "--backend", f"sqlite://{tmp_path}/jobs.db", "--router", f"127.0.0.1:{router.port}",
            "--results", str(tmp_path / "results"), "--metrics-port", str(metrics_port),
            "--log-format", "text",
        )  # fmt: skip
        try:
            async with httpx.AsyncClient() as http:

                async def ready() -> bool:
                    try:
                        await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
                    except httpx.TransportError:
                        return False
                    return True

                assert await eventually(ready, 60)
            idle = _memory_kib(worker.pid, "VmRSS")
            job, _ = await backend.submit(JobSpec(text=text, voice=VOICE, idempotency_key="big"))
            [done] = await all_ended(backend, [job.id], 300)
            peak = _memory_kib(worker.pid, "VmHWM")
        finally:
            worker.terminate()
            await worker.wait()
            await backend.close()
    size = await DirectoryStore(tmp_path / "results").size(done.result)
    spoken = len(text.split())
    assert done.state is JobState.SUCCEEDED, done.error
    assert size == 44 + spoken * SAMPLES_PER_WORD * 2
    growth_mib = (peak - idle) / 1024
    assert growth_mib < PEAK_GROWTH_MIB, (
        f"peak {peak / 1024:.0f} MiB, idle {idle / 1024:.0f} MiB, audio {size / 2**20:.0f} MiB"
    )
