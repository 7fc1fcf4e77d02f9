"""Schemathesis against the gateway's own OpenAPI spec, over real HTTP on 127.0.0.1.

Every operation gets generated requests, valid and invalid; every answer must
be documented in the spec (status, content type, body schema), none may be
a server error, and invalid requests must be refused. Schema-valid requests
may still be refused: whether a voice exists or a text has anything speakable
depends on the fleet, which no schema can say, so that one check is off. The gateway runs in a thread with its own event loop, in front
of a quick timed fleet, so speech and job submissions really run.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from job_helpers import running_gateway
from timed_fleet import running_router, timed_pods


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("gateway")
    ports: queue.Queue[int] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with (
            timed_pods([0.0]) as pods,
            running_router(pods) as router,
            running_gateway(workdir, router.port, max_queued=100_000) as gateway,
        ):
            ports.put(gateway.port)
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{ports.get(timeout=60)}"
    stop.set()
    thread.join(30)


def test_every_answer_is_documented_and_none_is_a_server_error(base_url: str) -> None:
    """Each operation in turn (schemathesis' pytest plugin needs pytest internals that moved)."""
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/jobs",
        "GET /v1/jobs/{job_id}",
        "GET /v1/jobs/{job_id}/audio",
        "POST /v1/audio/speech",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(
                timeout=30, excluded_checks=[schemathesis.checks.positive_data_acceptance]
            )

        conforms()
