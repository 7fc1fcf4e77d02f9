"""Liveness: a gateway whose in-process job workers gave up says so on /healthz."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from timed_fleet import free_port

from ttsfleet.gateway.server import Gateway
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.options import Parts
from ttsfleet.jobs.sqlite_backend import SqliteBackend
from ttsfleet.jobs.storage import DirectoryStore


async def test_healthz_is_503_once_the_job_workers_gave_up(tmp_path: Path) -> None:
    backend = await SqliteBackend.open(tmp_path / "jobs.db")
    fleet = FleetClient(f"127.0.0.1:{free_port()}")
    parts = Parts(backend, DirectoryStore(tmp_path / "results"), fleet, give_up_seconds=0.5)
    gateway = Gateway(parts)
    await gateway.start("127.0.0.1", 0, None)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            await backend.close()  # every claim fails from now on
            for _ in range(200):
                health = await http.get("/healthz")
                if health.status_code != 200:
                    break
                await asyncio.sleep(0.05)
        assert health.status_code == 503, health.text
        assert health.json() == {"status": "job workers stopped"}
        assert not gateway.alive()
        errors = parts.metrics.registry.get_sample_value("ttsfleet_worker_loop_errors_total")
        assert errors is not None and errors >= 2
    finally:
        await gateway.stop(1.0)
        await fleet.close()
