"""A gateway in this process over real HTTP and gRPC on 127.0.0.1, in front of a timed fleet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from job_helpers import running_gateway
from timed_fleet import running_router, timed_pods

from ttsfleet.gateway.server import Gateway


@pytest.fixture
async def pods_and_router() -> AsyncIterator[int]:
    """Two timed pods (1 ms per word) behind a router; yields the router's port."""
    async with timed_pods([0.001, 0.001]) as pods, running_router(pods) as router:
        yield router.port


@pytest.fixture
async def gateway(pods_and_router: int, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, pods_and_router) as running:
        yield running


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30) as client:
        yield client
