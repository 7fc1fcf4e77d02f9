"""The MCP server: the fleet's tools on `MCPServer`, behind the Governor (``governance``).

Each tool is a method that fetches what it needs at the edges (``kube``,
``load``, ``sources``) and answers with a pure function from ``tools``;
its signature, with pydantic constraints, is its JSON input schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ttsfleet import logs
from ttsfleet.mcp import tools
from ttsfleet.mcp.approvals import ApprovalError, Approvals
from ttsfleet.mcp.governance import Governor, caller
from ttsfleet.mcp.kube import Fleet, Kube
from ttsfleet.mcp.load import read_reports
from ttsfleet.mcp.sources import RequestSource, RouterLog

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
BOUNDED_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
READ_TOOLS = ("fleet_overview", "pool_load", "request_path", "pool_events")
WRITE_TOOLS = ("propose_scale", "approve_scale")


PoolName = Annotated[str, Field(description="the TTSPool's name", min_length=1, max_length=253)]


@dataclass(frozen=True)
class Settings:
    """How the tools reach pods' load reports, and how long a scale proposal waits."""

    load_address: str = "{ip}:50051"
    load_seconds: float = 2.0
    approval_ttl_seconds: float = 900.0


class FleetTools:
    """The tools' bodies: fetch at the edges, answer with ``tools``' pure functions.

    The Governor has put the call's correlation id in ``logs.request_id``;
    every fetch passes it on.
    """

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        sources: Sequence[RequestSource] = (),
        router_log: RouterLog | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._sources = tuple(sources)
        self._router_log = router_log
        self._approvals = Approvals(settings.approval_ttl_seconds)

    async def _pool(self, pool: str) -> tuple[dict[str, Any], Fleet]:
        fleet = await self._kube.fleet(logs.request_id.get(), pool)
        body = next((p for p in fleet.pools if p["metadata"]["name"] == pool), None)
        if body is None:
            raise ToolError(f"no TTSPool {pool!r} in namespace {self._kube.namespace}")
        return body, fleet

    async def fleet_overview(self) -> dict[str, Any]:
        """Every pool and voice: conditions, replicas, queue depth, and why a pool is not Ready
        (including pods the scheduler cannot place, with its message)."""
        fleet = await self._kube.fleet(logs.request_id.get())
        return tools.overview(self._kube.namespace, fleet.pools, fleet.voices, fleet.pods)

    async def pool_load(self, pool: PoolName) -> dict[str, Any]:
        """One pool's load now, from each pod's own load report, and its recent request count,
        error rate and latency from the router's log when one is configured."""
        body, fleet = await self._pool(pool)
        reports = await read_reports(
            fleet.pods,
            self._settings.load_address,
            self._settings.load_seconds,
            logs.request_id.get(),
        )
        records = await self._router_log.recent() if self._router_log else None
        return tools.load_figures(body, reports, records)

    async def request_path(
        self,
        id: Annotated[
            str, Field(description="a request id or a job id", min_length=1, max_length=128)
        ],
    ) -> dict[str, Any]:
        """What happened to a request or job: its job record and the router's log lines for it
        (pod, retries, status, timings)."""
        found = {source.name: await source.find(id) for source in self._sources}
        answer: dict[str, Any] = {
            "id": id,
            "foundIn": sorted(name for name, value in found.items() if value),
            "sources": sorted(found),
            "job": found.get("jobs"),
        }
        lines = found.get("router_log")
        if lines:
            answer["router"] = tools.router_path(lines)
        return answer

    async def pool_events(
        self,
        pool: PoolName,
        limit: Annotated[int, Field(description="newest events to return", ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Recent Kubernetes events about a pool, its Deployment and pods, and pod restarts."""
        _, fleet = await self._pool(pool)
        events = await self._kube.events(logs.request_id.get())
        return tools.pool_events(pool, events, fleet.pods, fleet.deployments, limit)

    async def propose_scale(
        self,
        pool: PoolName,
        replicas: Annotated[int, Field(description="replicas wanted", ge=0, le=1000)],
    ) -> dict[str, Any]:
        """Propose setting a pool's replicas within its own min/max; acts only once a second
        identity calls approve_scale with the proposal's id."""
        body, _ = await self._pool(pool)
        low, high = _bounds(body, replicas)
        proposal = self._approvals.propose(caller.get(), self._kube.namespace, pool, replicas)
        return {
            "proposalId": proposal.id,
            "pool": pool,
            "replicas": replicas,
            "bounds": [low, high],
            "state": "awaiting approval by another identity",
        }

    async def approve_scale(
        self, proposal_id: Annotated[str, Field(description="the id propose_scale returned")]
    ) -> dict[str, Any]:
        """Approve another identity's scale proposal: the pool is scaled now (bounds re-checked)."""
        try:
            proposal = self._approvals.take(proposal_id, caller.get())
        except ApprovalError as error:
            raise ToolError(str(error)) from error
        body, _ = await self._pool(proposal.pool)
        _bounds(body, proposal.replicas)
        scale = await self._kube.scale(proposal.pool, proposal.replicas, logs.request_id.get())
        return {
            "pool": proposal.pool,
            "replicas": (scale.get("spec") or {}).get("replicas"),
            "proposedBy": proposal.requested_by,
            "approvedBy": caller.get(),
            "state": "scaled",
        }


def _bounds(pool: dict[str, Any], replicas: int) -> tuple[int, int]:
    try:
        return tools.scale_bounds(pool, replicas)
    except tools.BoundsError as error:
        raise ToolError(str(error)) from error


def build(governor: Governor, fleet: FleetTools, scale_enabled: bool) -> MCPServer:
    """The MCPServer with the read tools, and the scale pair only when enabled."""
    server = MCPServer(
        "ttsfleet",
        instructions="Read-only views of a ttsfleet TTS fleet for on-call engineers.",
        token_verifier=governor.access,
        middleware=[governor],
        # Tokens are checked here, not issued: the issuer URL is required but never served.
        auth=AuthSettings(
            issuer_url=AnyHttpUrl("http://127.0.0.1"),
            resource_server_url=None,
            validate_token_resource=False,
        ),
    )
    chosen = [(n, READ_ONLY) for n in READ_TOOLS]
    if scale_enabled:
        chosen += [(n, BOUNDED_WRITE) for n in WRITE_TOOLS]
    for name, hints in chosen:
        server.add_tool(getattr(fleet, name), name=name, annotations=hints, structured_output=False)

    server.custom_route("/healthz", methods=["GET"])(_healthz)
    return server


async def _healthz(_: Request) -> Response:
    """For the kubelet's probes: no token needed, nothing revealed."""
    return JSONResponse({"status": "ok"})
