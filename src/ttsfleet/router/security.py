"""Optional protection of the listener: TLS from PEM files, and bearer-token auth.

Health checks stay open (kubelet probes and load balancers carry no token);
every other call needs `authorization: Bearer <token>` with one of the
configured tokens, or gets UNAUTHENTICATED before any pod is involved.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health

from ttsfleet.reloading import ReloadingFile

OPEN_PREFIXES = (f"/{health.SERVICE_NAME}/",)


def server_credentials(cert: Path, key: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])


def parse_tokens(text: str) -> frozenset[str]:
    """One token per line; blank lines and lines starting with # are skipped."""
    lines = (line.strip() for line in text.splitlines())
    tokens = frozenset(line for line in lines if line and not line.startswith("#"))
    if not tokens:
        raise ValueError("the token file holds no token")
    return tokens


def token_file(path: Path) -> ReloadingFile[frozenset[str]]:
    """The accepted tokens, re-read when the file (a mounted Secret) changes."""
    return ReloadingFile(path, parse_tokens, check_seconds=1.0)


def caller_name(authorization: str | None) -> str:
    """A stable name for the bearer token a caller presents ("" for none), never the token."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return "token-" + hashlib.sha256(token.strip().encode()).hexdigest()[:12]


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")


class BearerTokenAuth(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    def __init__(self, tokens: Callable[[], Collection[str]]) -> None:
        self._tokens = tokens
        self._refusal = grpc.unary_unary_rpc_method_handler(_refuse)

    def _valid(self, header: str | bytes | None) -> bool:
        if header is None:
            return False
        value = header.encode() if isinstance(header, str) else header
        scheme, _, token = value.partition(b" ")
        # Compare with every token, so the time taken does not tell which one nearly matched.
        known = [accepted.encode() for accepted in self._tokens()]
        matches = [hmac.compare_digest(token.strip(), accepted) for accepted in known]
        return scheme.lower() == b"bearer" and any(matches)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(OPEN_PREFIXES):
            return await continuation(details)
        header = dict(details.invocation_metadata or ()).get("authorization")
        if self._valid(header):
            return await continuation(details)
        return self._refusal
