"""Processes killed mid-job: no accepted job is lost, none is completed twice.

The fleet (timed pods, one word at a time, and a router) runs in the test;
the gateway and the workers run as real `ttsfleet` processes that the test
kills with SIGKILL, so nothing gets to clean up. "Completed" is counted from
the workers' own logs: one "job succeeded" line per job, across every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
from job_helpers import sentences
from redis_server import flush
from timed_fleet import free_port, running_router, timed_pods

from ttsfleet.jobs.backend import JobBackend, open_backend
from ttsfleet.jobs.model import JobSpec, JobState

JOBS = 4
TEXT = sentences(8)  # 40 words: about a second per job on the slow pods below
FLAGS = ("--lease-seconds", "1", "--min-chars", "40", "--piece-chars", "40", "--log-format", "json")


@contextlib.asynccontextmanager
async def slow_fleet() -> AsyncIterator[str]:
    """Two pods that speak one word per 20 ms step, behind a router; yields its address."""
    async with timed_pods([0.02, 0.02], max_batch_size=1) as pods, running_router(pods) as router:
        yield f"127.0.0.1:{router.port}"


async def ttsfleet(log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ttsfleet.cli", *args, *FLAGS, stderr=stderr
        )


async def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGKILL)
    await process.wait()


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await process.wait()


def completions(*logs: Path) -> Counter[str]:
    """Job ids by how many times a worker logged completing them."""
    done: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("message") == "job succeeded":
                    done[record["request_id"]] += 1
    return done


async def running_mid_job(backend: JobBackend, ids: Sequence[str]) -> str:
    """Waits (bounded) until some job has pieces done but is not finished; returns its id."""
    found: list[str] = []

    async def look() -> bool:
        for job_id in ids:
            job = await backend.get(job_id)
            if job and job.state is JobState.RUNNING and 0 < job.pieces_done < job.pieces_total:
                found.append(job_id)
                return True
        return False

    for _ in range(1500):
        if await look():
            return found[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no job was seen mid-way")


async def all_succeeded(backend: JobBackend, ids: Sequence[str]) -> None:
    for _ in range(600):
        jobs = [await backend.get(job_id) for job_id in ids]
        if all(job and job.state is JobState.SUCCEEDED for job in jobs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not all succeeded: {[j.state.value if j else None for j in jobs]}")


async def test_a_gateway_killed_mid_job_loses_nothing_after_restart(tmp_path: Path) -> None:
    database = tmp_path / "jobs.db"
    port = free_port()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    async with slow_fleet() as router:
        args = (
            "gateway", "--router", router, "--backend", f"sqlite://{database}",
            "--results", str(tmp_path / "results"), "--host", "127.0.0.1", "--port", str(port),
            "--grpc-port", "-1",
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def up() -> None:
                for _ in range(600):
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/healthz")).status_code == 200:
                            return
                    await asyncio.sleep(0.05)
                raise AssertionError("the gateway did not come up")

            first = await ttsfleet(logs[0], *args)
            try:
                await up()
                ids = [
                    (await http.post("/v1/jobs", json={"text": TEXT})).json()["id"]
                    for _ in range(JOBS)
                ]
                backend = await open_backend(f"sqlite://{database}")
                killed = await running_mid_job(backend, ids)
            finally:
                await kill(first)
            second = await ttsfleet(logs[1], *args)
            try:
                await up()
                await all_succeeded(backend, ids)
                audio = await http.get(f"/v1/jobs/{killed}/audio")
                finished = await backend.get(killed)
            finally:
                await stop(second)
                await backend.close()
    assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
    assert completions(*logs) == dict.fromkeys(ids, 1), "every job completed exactly once"
    assert finished is not None and finished.attempts == 2


async def test_a_redis_worker_killed_mid_job_is_taken_over_by_another(
    redis_url: str, tmp_path: Path
) -> None:
    flush(redis_url)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    backend = await open_backend(redis_url)
    try:
        ids = [(await backend.submit(JobSpec(text=TEXT)))[0].id for _ in range(JOBS)]
        async with slow_fleet() as router:
            common = ("--router", router, "--backend", redis_url, "--results", str(tmp_path))
            worker_a = await ttsfleet(logs[0], "worker", "--name", "a", *common)
            try:
                killed = await running_mid_job(backend, ids)
            finally:
                await kill(worker_a)
            taken_over = await backend.get(killed)
            assert taken_over is not None and taken_over.state is JobState.RUNNING
            worker_b = await ttsfleet(logs[1], "worker", "--name", "b", *common)
            try:
                await all_succeeded(backend, ids)
            finally:
                await stop(worker_b)
        finished = await backend.get(killed)
    finally:
        await backend.close()
    assert finished is not None and finished.attempts == 2
    assert completions(*logs) == dict.fromkeys(ids, 1), "every job completed exactly once"
    assert completions(logs[1])[killed] == 1, "b finished what a started"
    assert (tmp_path / finished.result).exists()
