"""Who is calling and whether they may, now: API keys, per-caller rate limits, body size.

Keys come from a file (a mounted Secret), one `TENANT KEY [CLASS]` line per
key; the file is looked at again at most every second and re-read when it
changed, so keys rotate without a restart (add the new key, move callers,
remove the old one). Keys are kept only as SHA-256 digests. Without a key
file the gateway is open and every caller is the tenant "" (the local fleet).
CLASS (`interactive`, the default, or `batch`) is the priority class of the
key's speech requests; jobs are always batch.

The tenant a key names is the caller's identity everywhere after: on its
jobs, in its idempotency keys, in its limits and on every log line.
HTTP callers present `Authorization: Bearer KEY` or `X-API-Key: KEY`; gRPC
callers the same as metadata. OIDC/JWT verification is not built in.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ttsfleet import logs
from ttsfleet.errors import TTSError
from ttsfleet.gateway.errors import error_response
from ttsfleet.jobs.metrics import JobMetrics
from ttsfleet.reloading import ReloadingFile
from ttsfleet.wire import Priority

log = logging.getLogger(__name__)

Code = grpc.StatusCode
# Paths that stay open: probes, metrics and the API's own description.
OPEN_PATHS = ("/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def credential(authorization: str | None, api_key: str | None) -> str:
    """The key a caller presented: `Bearer KEY` in Authorization, else X-API-Key ("" if none)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (api_key or "").strip()


@dataclass(frozen=True)
class Caller:
    """Who a key belongs to, and the priority class of its speech requests."""

    tenant: str
    priority: Priority = Priority.INTERACTIVE


def parse_api_keys(text: str) -> dict[bytes, Caller]:
    """`TENANT KEY [CLASS]` lines as {key digest: caller}; a file with none is refused."""
    callers: dict[bytes, Caller] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        classes = [p.value for p in Priority]
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] not in classes):
            log.error(
                "API key file: line %d is not `TENANT KEY [%s]`; skipped", number, "|".join(classes)
            )
            continue
        priority = Priority(words[2]) if len(words) == 3 else Priority.INTERACTIVE
        callers[_digest(words[1])] = Caller(words[0], priority)
    if not callers:
        raise ValueError("the API key file holds no keys (one `TENANT KEY [CLASS]` per line)")
    return callers


class ApiKeys:
    """The key file's callers by key digest, re-read when the file changes."""

    def __init__(self, path: Path, check_seconds: float = 1.0) -> None:
        self._file = ReloadingFile(path, parse_api_keys, check_seconds)

    def caller(self, key: str) -> Caller | None:
        """Who `key` belongs to, or None."""
        return self._file.current().get(_digest(key)) if key else None


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """A token bucket per tenant: `rate` requests a second, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant: str) -> None:
        """Spends one request; raises RESOURCE_EXHAUSTED (with Retry-After) when none is left."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        bucket = self._buckets.setdefault(tenant, _Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / self.rate)
            raise TTSError(
                Code.RESOURCE_EXHAUSTED,
                f"over {self.rate:g} requests a second (bursts of {self.burst}); slow down",
                retry_after=wait,
            )
        bucket.tokens -= 1


class Gatekeeper:
    """Authenticates a caller and spends one of its requests: the tenant, or a TTSError."""

    def __init__(self, keys: ApiKeys | None, limit: RateLimit, metrics: JobMetrics) -> None:
        self.keys = keys
        self.limit = limit
        self.metrics = metrics
        self.rejected = metrics.rejected

    def admit(self, key: str) -> Caller:
        caller = Caller("")
        if self.keys is not None:
            found = self.keys.caller(key)
            if found is None:
                self.rejected.labels("unauthenticated").inc()
                what = "an unknown API key" if key else "no API key"
                raise TTSError(
                    Code.UNAUTHENTICATED,
                    f"{what}: send `Authorization: Bearer KEY` (or X-API-Key)",
                )
            caller = found
        try:
            self.limit.take(caller.tenant)
        except TTSError:
            self.rejected.labels("rate").inc()
            raise
        logs.tenant.set(caller.tenant)
        return caller

    def grpc_tenant(self, context: grpc.aio.ServicerContext) -> str:
        """`admit` for a gRPC call, from its metadata: the caller's tenant."""
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        key = credential(metadata.get("authorization"), metadata.get("x-api-key"))
        return self.admit(key).tenant


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class GatekeeperMiddleware:
    """ASGI middleware in front of every API route: a body whose length says it is too long
    is refused (413) at once, then the caller is admitted (401, 429), then the body is read,
    up to the limit (413 as soon as it is over), and handed on.

    The caller goes to `request.state.caller` for the routes.
    """

    def __init__(self, app: Any, gatekeeper: Gatekeeper, max_body_bytes: int) -> None:
        self.app = app
        self.gatekeeper = gatekeeper
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body:
                raise self._too_large()
            key = credential(headers.get("authorization"), headers.get("x-api-key"))
            scope.setdefault("state", {})["caller"] = self.gatekeeper.admit(key)
            body = await self._body(receive)
        except TTSError as error:
            await error_response(error)(scope, receive, send)
            return
        if body is None:
            return  # the client went away
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole request body (at most the limit, or 413), or None if the client left."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:
                raise self._too_large()
            if not message.get("more_body", False):
                return bytes(body)

    def _too_large(self) -> TTSError:
        self.gatekeeper.rejected.labels("too_large").inc()
        return TTSError(
            Code.OUT_OF_RANGE, f"the request body is over {self.max_body} bytes", field="body"
        )
