"""Safe failure over real gRPC: retry before audio, never after; ejection; a pod killed under load."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import grpc
from timed_fleet import (
    VOICE,
    Child,
    fill,
    free_port,
    pod_process,
    running_router,
    stub_for,
    timed_pods,
    until,
    words,
)

from ttsfleet.proto import tts_pb2
from ttsfleet.router.discovery.static import StaticDiscovery
from ttsfleet.router.server import RouterServer
from ttsfleet.router.settings import RouterSettings


def metric(router: RouterServer, name: str, **labels: str) -> float:
    return router.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_pod_that_refuses_connections_costs_a_retry_then_is_ejected() -> None:
    """Round-robin would send every other request to the dead address; none fails."""
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here: connections are refused
    async with timed_pods([0.0]) as (live,):
        discovery = StaticDiscovery(
            [(dead, "pool", [VOICE]), (f"127.0.0.1:{live.port}", "pool", [VOICE])], VOICE
        )
        # With stale_after=0 no report is ever fresh: both pods take turns, unknown load.
        router = RouterServer(discovery, RouterSettings(picker="round-robin", stale_after=0.0))
        await router.start()
        try:
            async with stub_for(router) as stub:
                for _ in range(10):
                    response = await stub.Synthesize(tts_pb2.TTSRequest(text=words(3)))
                    assert response.audio.startswith(b"RIFF")
            assert metric(router, "ttsfleet_router_retries_total", pool="pool") == 3
            assert metric(router, "ttsfleet_router_ejections_total", pool="pool", pod=dead) == 1
            assert metric(router, "ttsfleet_router_picks_total", pool="pool", pod=dead) == 3
        finally:
            await router.stop(1)


async def test_a_full_pod_is_retried_elsewhere_and_the_last_answer_stands() -> None:
    """Both pods full and the router not yet told (stale reports): each refusal is retried once."""
    async with (
        timed_pods([0.05, 0.05], queue_limit=1, max_batch_size=1) as pods,
        running_router(pods, stale_after=0.0) as router,
        stub_for(router) as stub,
    ):
        filling = await fill(stub, pods)
        retries = metric(router, "ttsfleet_router_retries_total", pool="pool")
        call = stub.Synthesize(tts_pb2.TTSRequest(text="hi"))
        assert await call.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue full" in (await call.details()), "the pod's own message"
        assert metric(router, "ttsfleet_router_retries_total", pool="pool") == retries + 1
        assert all(e.failures == 0 for e in router.datastore.endpoints), "full is not a fault"
        for stream in filling:
            stream.cancel()


async def test_killing_a_pod_under_load_loses_no_request_that_had_not_started() -> None:
    """Requests queued on the killed pod are retried elsewhere; streams cut mid-way say so."""
    outcomes: list[tuple[int, grpc.StatusCode]] = []
    async with contextlib.AsyncExitStack() as stack:
        pods: list[Child] = [
            await stack.enter_async_context(pod_process(0.01, batch=2)) for _ in range(3)
        ]
        discovery = StaticDiscovery([(f"127.0.0.1:{p.port}", "pool", [VOICE]) for p in pods], VOICE)
        router = RouterServer(discovery)
        await router.start()
        stack.push_async_callback(router.stop, 1.0)
        victim = router.datastore.get(f"127.0.0.1:{pods[0].port}")
        assert victim is not None
        stub = await stack.enter_async_context(stub_for(router))

        async def client() -> None:
            for _ in range(4):
                received = 0
                call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(20)), timeout=60)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for _chunk in call:
                        received += 1
                outcomes.append((received, await call.code()))

        clients = [asyncio.create_task(client()) for _ in range(18)]
        # Kill it while it has queued work that has not started streaming.
        await until(lambda: victim.in_flight > 2 and victim.queue_depth > 0)
        pods[0].process.send_signal(signal.SIGKILL)
        await asyncio.gather(*clients)
    assert len(outcomes) == 18 * 4
    failed = [(received, code) for received, code in outcomes if code is not grpc.StatusCode.OK]
    assert all(received == 20 for received, code in outcomes if code is grpc.StatusCode.OK)
    assert all(0 < received < 20 for received, _ in failed), failed
    assert metric(router, "ttsfleet_router_retries_total", pool="pool") >= 1
