"""Every tool call governed the same way: identity, grant, correlation id, one audit record.

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
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttsfleet import logs
from ttsfleet.mcp.access import AccessFile, Identity
from ttsfleet.mcp.audit import Audit

# Set by the Governor for the tool running now.
caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")
CORRELATION_META = "ttsfleet.dev/correlation-id"


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
