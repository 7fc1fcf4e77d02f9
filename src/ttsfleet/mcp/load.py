"""A pool's live load, read from its pods' own LoadReporter streams (the router's numbers).

How a pod is reached is a template (``{ip}``, ``{name}``, ``{namespace}``,
``{pool}``): the pod IP in a cluster, a loopback stand-in in tests. The
tool call's correlation id travels as gRPC metadata on every read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from ttsfleet.manifests import POOL_LABEL
from ttsfleet.mcp.kube import correlation_headers
from ttsfleet.proto import ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc


def pod_address(template: str, pod: Mapping[str, Any]) -> str | None:
    """Where the pod's LoadReporter answers, or None (no template, or no IP yet)."""
    meta, ip = pod.get("metadata") or {}, (pod.get("status") or {}).get("podIP") or ""
    if not template or ("{ip}" in template and not ip):
        return None
    return template.format(
        ip=ip,
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        pool=(meta.get("labels") or {}).get(POOL_LABEL, ""),
    )


async def read_report(address: str, seconds: float, correlation_id: str) -> dict[str, Any] | None:
    """The first report of the pod's WatchLoad stream as a dict, or None when none came."""
    metadata = tuple(correlation_headers(correlation_id).items())
    async with grpc.aio.insecure_channel(address) as channel:
        call = ttsfleet_v1_pb2_grpc.LoadReporterStub(channel).WatchLoad(
            ttsfleet_v1_pb2.WatchLoadRequest(min_interval_ms=0, max_interval_ms=1000),
            timeout=seconds,
            metadata=metadata,
        )
        try:
            report = await call.read()
        except grpc.aio.AioRpcError:
            return None
        finally:
            call.cancel()
    if report is grpc.aio.EOF:
        return None
    return MessageToDict(report, always_print_fields_with_no_presence=True)


async def read_reports(
    pods: Sequence[Mapping[str, Any]], template: str, seconds: float, correlation_id: str
) -> dict[str, dict[str, Any] | None]:
    """Each pod's report by pod name (None: unreachable, silent or not addressable)."""

    async def one(pod: Mapping[str, Any]) -> dict[str, Any] | None:
        address = pod_address(template, pod)
        return await read_report(address, seconds, correlation_id) if address else None

    reports = await asyncio.gather(*(one(pod) for pod in pods))
    return {pod["metadata"]["name"]: report for pod, report in zip(pods, reports, strict=True)}
