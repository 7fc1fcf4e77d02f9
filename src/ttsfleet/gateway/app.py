"""Assembles the HTTP API: job routes, the speech route, one error shape, the OpenAPI spec."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ttsfleet.gateway import errors, jobs_api, speech_api
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.service import JobService

DESCRIPTION = """\
Long-form and asynchronous text to speech on a ttsfleet fleet.

Submit a long text as a job and collect its audio later (`/v1/jobs`), or
stream speech as it is made (`/v1/audio/speech`, OpenAI-compatible). Errors
are JSON: `{"error": {"message", "type", "param", "code"}}`.
"""


def create_app(jobs: JobService, fleet: FleetClient, max_streams: int = 64) -> FastAPI:
    app = FastAPI(title="ttsfleet gateway", version="1", description=DESCRIPTION)
    app.state.jobs = jobs
    app.state.fleet = fleet
    app.state.speech_slots = speech_api.StreamSlots(max_streams)
    errors.install(app)
    app.include_router(jobs_api.router)
    app.include_router(speech_api.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Answers while the gateway runs."""
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        """The spec, without FastAPI's 422 (validation errors are 400 here, see errors.py)."""
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for path in spec["paths"].values():
                for operation in path.values():
                    operation["responses"].pop("422", None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
