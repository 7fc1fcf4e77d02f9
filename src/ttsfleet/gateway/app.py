"""Assembles the HTTP API: job routes, the speech route, one error shape, the OpenAPI spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ttsfleet import tracing
from ttsfleet.gateway import errors, jobs_api, speech_api
from ttsfleet.gateway.auth import Gatekeeper, GatekeeperMiddleware, RateLimit
from ttsfleet.gateway.openai_voices import VoiceMap
from ttsfleet.jobs.fleet_client import FleetClient
from ttsfleet.jobs.metrics import JobMetrics
from ttsfleet.jobs.service import JobService

DESCRIPTION = """\
Long-form and asynchronous text to speech on a ttsfleet fleet.

Submit a long text as a job and collect its audio later (`/v1/jobs`), or
stream speech as it is made (`/v1/audio/speech`, OpenAI-compatible). Errors
are JSON: `{"error": {"message", "type", "param", "code"}}`.
"""


# Every API route may answer these: the gatekeeper's refusals.
GATEKEEPER_STATUSES = (401, 413, 429)


def create_app(
    jobs: JobService,
    fleet: FleetClient,
    max_streams: int = 64,
    gatekeeper: Gatekeeper | None = None,
    max_body_bytes: int = 1 << 20,
    alive: Callable[[], bool] = lambda: True,
    openai_voices: VoiceMap | None = None,
) -> FastAPI:
    """The HTTP API; `alive` says whether the process still does its work (its job workers)."""
    app = FastAPI(title="ttsfleet gateway", version="1", description=DESCRIPTION)
    gatekeeper = gatekeeper or Gatekeeper(None, RateLimit(0, 0), JobMetrics())
    registry = gatekeeper.metrics.registry
    app.state.jobs = jobs
    app.state.fleet = fleet
    app.state.speech_slots = speech_api.StreamSlots(max_streams)
    app.state.openai_voices = openai_voices or VoiceMap()
    errors.install(app)
    tracing.instrument_http(app)
    app.add_middleware(GatekeeperMiddleware, gatekeeper=gatekeeper, max_body_bytes=max_body_bytes)
    gatekeeper_answers = errors.responses(*GATEKEEPER_STATUSES)
    for router in (jobs_api.router, jobs_api.dead_letters, speech_api.router):
        app.include_router(router, responses=gatekeeper_answers)

    @app.get("/healthz", tags=["health"], responses={503: {"description": "Restart me."}})
    async def healthz() -> JSONResponse:
        """200 while the gateway runs; 503 once its in-process job workers gave up."""
        if alive():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "job workers stopped"}, status_code=503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus() -> Response:
        """Job and gateway counters for Prometheus."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        """The spec without FastAPI's validation 422 (validation errors are 400 here, see
        errors.py; the one 422 left is a reused idempotency key)."""
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for path in spec["paths"].values():
                for operation in path.values():
                    answers = operation["responses"]
                    if "HTTPValidationError" in str(answers.get("422", "")):
                        del answers["422"]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
