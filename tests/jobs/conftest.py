"""Job backends (embedded SQLite and a real redis-server) and a timed fleet behind a router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis_server import flush, redis_server
from timed_fleet import running_router, timed_pods

from ttsfleet.jobs.backend import JobBackend, open_backend
from ttsfleet.router.server import RouterServer

# Short enough that a lost worker's job moves on within a test.
LEASE = 0.6


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/jobs.db"
    url: str = request.getfixturevalue("redis_url")
    flush(url)
    return url


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[JobBackend]:
    opened = await open_backend(backend_url, lease_seconds=LEASE)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def router() -> AsyncIterator[RouterServer]:
    """Two timed pods (2 ms per word) behind a router."""
    async with timed_pods([0.002, 0.002]) as pods, running_router(pods) as running:
        yield running
