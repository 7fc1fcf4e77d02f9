"""Real inference servers with the real voice on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from voices import JOE, JOE_QUIET, load_engines, pod_config, running_server

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2_grpc


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for the module: tests that check audio rather than speed stay
    steady on a busy two-core machine (oversubscribed OpenMP threads wait on each other)."""
    import torch  # only the torch tests ask for this, and only they need torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def engines() -> dict[str, Any]:
    """Loading a voice takes a second or two: once per session."""
    return load_engines(JOE, JOE_QUIET)


@pytest.fixture
async def server(engines: dict[str, Any]) -> AsyncIterator[InferenceServer]:
    async with running_server(pod_config(JOE, JOE_QUIET), engines) as running:
        yield running


@pytest.fixture
async def stub(server: InferenceServer) -> AsyncIterator[tts_pb2_grpc.TTSServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield tts_pb2_grpc.TTSServiceStub(channel)
