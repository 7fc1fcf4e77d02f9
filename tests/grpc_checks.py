"""Checks any ttsfleet gRPC server answers the same way: standard health checking and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

SYNTHESIS = ("", "TTSService", "ttsfleet.v1.Synthesizer")


async def assert_serving_and_reflected(channel: grpc.aio.Channel) -> set[str]:
    """Health says SERVING for the server and both synthesis services; returns reflected names."""
    health = health_pb2_grpc.HealthStub(channel)
    for service in SYNTHESIS:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    return {s.name async for r in replies for s in r.list_services_response.service}
