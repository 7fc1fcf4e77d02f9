"""The MCP server: the fleet's tools on `MCPServer`, every call governed the same way.

A call is answered only for a known identity (a bearer token or JWT over
HTTP, the local token over stdio) whose grant names the tool; it gets a
correlation id that every Kubernetes and gRPC request it makes carries; and
it ends in exactly one audit record, whatever happened. Refusals at the HTTP
door (no token, an unknown one) are audited too, with no identity.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttsfleet import logs
from ttsfleet.mcp import tools
from ttsfleet.mcp.access import AccessFile, Identity
from ttsfleet.mcp.approvals import ApprovalError, Approvals
from ttsfleet.mcp.audit import Audit
from ttsfleet.mcp.kube import Kube
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

# Set by the Governor for the tool running now.
caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")
CORRELATION_META = "ttsfleet.dev/correlation-id"

PoolName = Annotated[str, Field(description="the TTSPool's name", min_length=1, max_length=253)]


@dataclass(frozen=True)
class Settings:
    load_address: str = "{ip}:50051"
    load_seconds: float = 2.0
    scale_enabled: bool = False
    approval_ttl_seconds: float = 900.0


class Governor(ServerMiddleware[Any]):
    """Identity, grant, correlation id and audit around every tools/call, as SDK middleware.

    Middleware sees every call, including one for an unknown tool or with
    arguments its schema refuses, so each is audited. The identity is looked
    up again on each call, so a grant revoked in the access file applies to
    sessions already open.
    """

    def __init__(self, access: AccessFile, audit: Audit, local_token: str = "") -> None:
        self.access = access
        self.audit = audit
        self._local_token = local_token

    def _identity(self) -> Identity | None:
        token = get_access_token()
        presented = token.token if token is not None else self._local_token
        return self.access.identify(presented) if presented else None

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        tool, arguments = str(params.get("name", "")), params.get("arguments") or {}
        started, correlation_id = time.time(), uuid.uuid4().hex
        identity = self._identity()
        who = identity.name if identity else None

        def record(outcome: str, detail: str = "") -> None:
            self.audit.record(
                who=who,
                tool=tool,
                params=arguments,
                outcome=outcome,
                started=started,
                correlation_id=correlation_id,
                detail=detail,
            )

        if identity is None or not identity.may(tool):
            refusal = f"{who or 'an unauthenticated caller'} may not call {tool}"
            record("refused", refusal)
            return _tagged(_error(refusal), correlation_id)
        request_id, name = logs.request_id.set(correlation_id), caller.set(identity.name)
        try:
            result = await call_next(ctx)
        except Exception as error:
            record("error", f"{type(error).__name__}: {error}")
            raise
        finally:
            logs.request_id.reset(request_id)
            caller.reset(name)
        failure = _failure(result)
        record("ok" if failure is None else "error", failure or "")
        return _tagged(result, correlation_id)


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


def _failure(result: HandlerResult) -> str | None:
    """A failed call's message, or None (tool results reach middleware as wire dicts)."""
    match result:
        case {"isError": True, "content": list(items)}:
            return " ".join(str(c.get("text", "")) for c in items if isinstance(c, dict))
    return None


def _tagged(result: HandlerResult, correlation_id: str) -> HandlerResult:
    """The result with the call's correlation id in its _meta, where clients can quote it."""
    if not isinstance(result, dict):
        return result
    return {**result, "_meta": {**(result.get("_meta") or {}), CORRELATION_META: correlation_id}}


class FleetTools:
    """The tools' bodies: fetch at the edges, answer with ``tools``' pure functions."""

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

    async def _pool(self, pool: str) -> tuple[dict[str, Any], Any]:
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
        records = list(self._router_log.records()) if self._router_log else None
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


def audit_refusals(app: ASGIApp, audit: Audit) -> ASGIApp:
    """Audits HTTP requests refused before any tool ran (no token, an unknown or expired one)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.time()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                headers = dict(scope.get("headers") or ())
                audit.record(
                    who=None,
                    tool=None,
                    params={"method": scope["method"], "path": scope["path"]},
                    outcome="refused",
                    started=started,
                    correlation_id=headers.get(b"x-request-id", b"").decode() or uuid.uuid4().hex,
                    detail=f"HTTP {message['status']}: no valid bearer token",
                )
            await send(message)

        await app(scope, receive, watch)

    return guarded
