"""Two quick timed pods and a router in front of them, on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from timed_fleet import running_router, stub_for, timed_pods

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2_grpc
from ttsfleet.router.server import RouterServer


@pytest.fixture
async def pods() -> AsyncIterator[list[InferenceServer]]:
    """Two quick pods."""
    async with timed_pods([0.001, 0.001]) as servers:
        yield servers


@pytest.fixture
async def router(pods: list[InferenceServer]) -> AsyncIterator[RouterServer]:
    async with running_router(pods, metrics_port=0) as running:
        yield running


@pytest.fixture
async def stub(router: RouterServer) -> AsyncIterator[tts_pb2_grpc.TTSServiceStub]:
    async with stub_for(router) as found:
        yield found
