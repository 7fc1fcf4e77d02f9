"""A hung engine fails the pod's `liveness` health check (so Kubernetes restarts it); readiness is apart."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from timed_fleet import VOICE, TimedEngine, address, timed_config, words

from ttsfleet import wire
from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

SERVING, NOT_SERVING = (
    health_pb2.HealthCheckResponse.SERVING,
    health_pb2.HealthCheckResponse.NOT_SERVING,
)


async def status(channel: grpc.aio.Channel, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(reply.status)


async def statuses_until(channel: grpc.aio.Channel, wanted: int, seconds: float = 30) -> None:
    for _ in range(int(seconds * 10)):
        if await status(channel, wire.LIVENESS_SERVICE) == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"liveness never became {wanted}")


async def test_an_engine_stuck_in_a_step_fails_liveness_and_recovers() -> None:
    engine = TimedEngine(step_seconds=4.0)  # one step far longer than the stall limit
    server = InferenceServer(timed_config(VOICE), {VOICE: engine}, stall_seconds=1.0)
    await server.start("127.0.0.1", 0, None)
    try:
        async with grpc.aio.insecure_channel(address(server)) as channel:
            assert await status(channel, wire.LIVENESS_SERVICE) == SERVING  # idle is alive
            stub = tts_pb2_grpc.TTSServiceStub(channel)
            call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=words(2)), timeout=60)
            reading = asyncio.ensure_future(call.read())
            await statuses_until(channel, NOT_SERVING)
            assert await status(channel, "") == SERVING  # still ready: only liveness says "stuck"
            await reading  # the step ends at last: the engine moved on
            await statuses_until(channel, SERVING)
            call.cancel()
    finally:
        with contextlib.suppress(Exception):
            await server.stop(1.0)
