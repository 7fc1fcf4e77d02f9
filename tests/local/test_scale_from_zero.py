"""Scale from zero, serving half: a local pool asleep at zero pods, the real voice, real gRPC.

The fleet and the router run in this process (as `ttsfleet up` runs them), so
each test can set the router's hold bounds and read its metrics. The pool
starts with no pod; its first request is held while a real inference process
starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from audio_checks import assert_speech, pcm16, read_wav
from job_helpers import worker_for
from timed_fleet import until

from ttsfleet import wire
from ttsfleet.jobs.backend import open_backend
from ttsfleet.jobs.model import JobSpec, JobState
from ttsfleet.local.fleet import LocalFleet
from ttsfleet.manifests import manifests_from_documents
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.router.server import RouterServer
from ttsfleet.router.settings import RouterSettings

pytestmark = pytest.mark.voice  # the real Piper voice

SLEEPY = Path(__file__).resolve().parents[2] / "examples" / "sleeping-pool.yaml"
# Generous: one inference process starting on two shared cores.
WAKE_LIMIT_S = 120.0


@contextlib.asynccontextmanager
async def local_fleet(
    workdir: Path, idle_seconds: int = 300, **settings: Any
) -> AsyncIterator[tuple[LocalFleet, RouterServer]]:
    """examples/sleeping-pool.yaml, at zero pods behind a router that may wake it."""
    voice, pool = yaml.safe_load_all(SLEEPY.read_text())
    pool["spec"]["autoscaling"]["scaleDownStabilizationSeconds"] = idle_seconds
    local = LocalFleet(manifests_from_documents([voice, pool]), workdir, "json")
    await local.start()
    router = RouterServer(local.discovery, RouterSettings(**settings), waker=local)
    try:
        await router.start()
        assert local.pods == [], "a pool that scales from zero starts asleep"
        yield local, router
    finally:
        await router.stop(1)
        await local.stop(10)


@contextlib.asynccontextmanager
async def sleeping_fleet(workdir: Path, **settings: Any) -> AsyncIterator[RouterServer]:
    async with local_fleet(workdir, **settings) as (_, router):
        yield router


def metric(router: RouterServer, name: str, **labels: str) -> float:
    return router.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_the_first_request_after_zero_is_served(tmp_path: Path) -> None:
    text = "Good morning. The first request of the day is served, late but served."
    async with sleeping_fleet(tmp_path) as router:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
            call = tts_pb2_grpc.TTSServiceStub(channel).StreamSynthesize(
                tts_pb2.TTSRequest(text=text), timeout=WAKE_LIMIT_S
            )
            audio = b"".join([chunk.chunk async for chunk in call])
            rate = int(dict(await call.initial_metadata())[wire.SAMPLE_RATE_KEY])
            # Awake now: the next request goes straight to the pod.
            again = await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                tts_pb2.TTSRequest(text="And the second one."), timeout=30
            )
        assert_speech(pcm16(audio), rate, text)
        assert read_wav(again.audio)[1].size > 0
        pool = {"pool": "english"}
        assert metric(router, "ttsfleet_router_wakeups_total", **pool) == 1
        assert metric(router, "ttsfleet_router_wake_seconds_count", **pool) == 1
        assert 0 < metric(router, "ttsfleet_router_wake_seconds_sum", **pool) < WAKE_LIMIT_S
        assert metric(router, "ttsfleet_router_held_requests", **pool) == 0
        assert metric(router, "ttsfleet_router_held_audio_seconds", **pool) == 0
        assert metric(router, "ttsfleet_router_pool_may_sleep", **pool) == 1


async def test_held_requests_are_bounded_per_pool(tmp_path: Path) -> None:
    async with (
        sleeping_fleet(tmp_path, max_held_requests=2) as router,
        grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)

        async def speak(i: int) -> grpc.StatusCode | bytes:
            try:
                answer = await stub.Synthesize(
                    tts_pb2.TTSRequest(text=f"Request number {i}."), timeout=WAKE_LIMIT_S
                )
            except grpc.aio.AioRpcError as error:
                assert "already holds 2 requests" in (error.details() or "")
                return error.code()
            return bytes(answer.audio)

        outcomes = await asyncio.gather(*(speak(i) for i in range(5)))
    refused = [o for o in outcomes if o == grpc.StatusCode.RESOURCE_EXHAUSTED]
    served = [o for o in outcomes if isinstance(o, bytes)]
    assert (len(served), len(refused)) == (2, 3), outcomes


async def test_a_deadline_shorter_than_the_hold_ends_the_hold(tmp_path: Path) -> None:
    async with (
        sleeping_fleet(tmp_path, wake_hold_seconds=60) as router,
        grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel,
    ):
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                # No pod process starts (interpreter, onnxruntime, voice) in 0.3 s.
                tts_pb2.TTSRequest(text="Too impatient."),
                timeout=0.3,
            )
        assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 10
        # Nothing is left held in the router once the caller's deadline passed.
        await until(lambda: not metric(router, "ttsfleet_router_held_requests", pool="english"))


async def test_a_pool_slower_to_wake_than_the_hold_is_unavailable(tmp_path: Path) -> None:
    """A pod process takes seconds to start; a 0.2 s hold ends first, with a clear message."""
    async with (
        sleeping_fleet(tmp_path, wake_hold_seconds=0.2) as router,
        grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
                tts_pb2.TTSRequest(text="Wake up quickly."), timeout=30
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "did not wake from zero within 0.2 s" in (refused.value.details() or "")


async def test_a_job_refused_while_its_pool_wakes_spends_no_attempt(tmp_path: Path) -> None:
    """The hold is shorter than the wake-up: the worker is refused, hands the job back, retries."""
    backend = await open_backend(f"sqlite://{tmp_path}/jobs.db")
    try:
        async with sleeping_fleet(tmp_path, wake_hold_seconds=0.2) as router:
            address = f"127.0.0.1:{router.port}"
            async with worker_for(backend, tmp_path / "audio", address) as worker:
                job, _ = await backend.submit(JobSpec(text="Patience pays."))
                ended = None
                async with asyncio.timeout(WAKE_LIMIT_S):
                    while ended is None or not ended.state.terminal:
                        ended = await worker.run_once(wait=1)
                refusals = worker.metrics.registry.get_sample_value(
                    "ttsfleet_jobs_fleet_away_total"
                )
        assert ended.id == job.id
        assert ended.state is JobState.SUCCEEDED, ended.error
        assert ended.attempts == 1
        assert (refusals or 0) >= 1, "the pool was asleep for at least one try"
    finally:
        await backend.close()


async def test_a_job_for_a_sleeping_pool_succeeds_at_its_first_attempt(tmp_path: Path) -> None:
    text = "This chapter was queued while the pool slept."
    backend = await open_backend(f"sqlite://{tmp_path}/jobs.db")
    try:
        async with sleeping_fleet(tmp_path) as router:
            address = f"127.0.0.1:{router.port}"
            async with worker_for(
                backend, tmp_path / "audio", address, piece_timeout=WAKE_LIMIT_S
            ) as worker:
                job, _ = await backend.submit(JobSpec(text=text))
                ended = await worker.run_once(wait=1)
        assert ended is not None and ended.id == job.id
        assert ended.state is JobState.SUCCEEDED, ended.error
        assert ended.attempts == 1
    finally:
        await backend.close()


async def test_an_idle_local_pool_falls_asleep_and_wakes_again(tmp_path: Path) -> None:
    async with (
        local_fleet(tmp_path, idle_seconds=1) as (local, router),
        grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        for text in ("Good night.", "Good morning."):
            answer = await stub.Synthesize(tts_pb2.TTSRequest(text=text), timeout=WAKE_LIMIT_S)
            assert_speech(read_wav(answer.audio)[1], read_wav(answer.audio)[0], text)
            assert len(local.pods) == 1
            await until(lambda: not local.pods, seconds=60)  # a second idle: asleep again
        assert metric(router, "ttsfleet_router_wakeups_total", pool="english") == 2
        assert metric(router, "ttsfleet_router_pool_ready_pods", pool="english") == 0
