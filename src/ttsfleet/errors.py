"""One error type for every refusal, and one table per boundary it crosses.

Every component refuses work the same way: a `TTSError` with the gRPC status
code DESIGN.md assigns and a message that tells the caller what to change.
Each boundary then reads the code from its own table: the router decides
whether another pod may help, the job worker whether another attempt may,
and the HTTP gateway which status and OpenAI error type to answer with.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

Code = grpc.StatusCode


class TTSError(Exception):
    """A request that ends with this status code and message.

    `field` names the request field at fault, when one is; `retry_after`
    says in how many seconds a retry may succeed, when the refusal is load.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after

    @classmethod
    def from_rpc(cls, error: grpc.aio.AioRpcError) -> TTSError:
        """A fleet's answer as an error of ours (an unknown voice names the `voice` field)."""
        field = "voice" if error.code() is Code.NOT_FOUND else None
        return cls(error.code(), error.details() or error.code().name, field=field)

    @property
    def permanent(self) -> bool:
        """Retrying the same request cannot help (see PERMANENT)."""
        return self.code in PERMANENT

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


# -- the router: is another pod worth trying? ---------------------------------

# The first pod could not take the call or broke before answering.
RETRY_ON_ANOTHER_POD = frozenset(
    {
        Code.UNAVAILABLE,
        Code.RESOURCE_EXHAUSTED,
        Code.INTERNAL,
        Code.UNKNOWN,
        Code.ABORTED,
        Code.CANCELLED,
    }
)
# Counted towards a pod's ejection. A full queue is load, not a fault.
POD_FAULTS = RETRY_ON_ANOTHER_POD - {Code.RESOURCE_EXHAUSTED}

# -- the job worker: is another attempt worth making? ------------------------

# The request itself is wrong (or not allowed): every retry would fail the same way.
PERMANENT = frozenset(
    {
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.FAILED_PRECONDITION,
        Code.OUT_OF_RANGE,
        Code.UNIMPLEMENTED,
        Code.UNAUTHENTICATED,
        Code.PERMISSION_DENIED,
    }
)
# The fleet is away or full: wait for it without spending one of the job's attempts.
FLEET_AWAY = frozenset({Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED})

# -- HTTP: which status and OpenAI error type? -------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    kind: str  # OpenAI's `error.type`
    retry_after: int | None = None


HTTP = {
    Code.INVALID_ARGUMENT: HttpAnswer(400, "invalid_request_error"),
    Code.NOT_FOUND: HttpAnswer(404, "not_found"),
    Code.FAILED_PRECONDITION: HttpAnswer(409, "not_ready"),
    Code.RESOURCE_EXHAUSTED: HttpAnswer(429, "overloaded", 1),
    Code.UNAUTHENTICATED: HttpAnswer(401, "authentication_error"),
    Code.PERMISSION_DENIED: HttpAnswer(403, "permission_error"),
    # An idempotency key reused with a different request.
    Code.ALREADY_EXISTS: HttpAnswer(422, "idempotency_error"),
    # A request body over the gateway's size limit.
    Code.OUT_OF_RANGE: HttpAnswer(413, "request_too_large"),
    Code.UNAVAILABLE: HttpAnswer(503, "unavailable", 5),
    Code.DEADLINE_EXCEEDED: HttpAnswer(504, "timeout"),
}
# Anything else came from the fleet unexpectedly.
UPSTREAM = HttpAnswer(502, "upstream_error")


def http_answer(error: TTSError) -> HttpAnswer:
    """The HTTP status for an error. A request field naming something unknown is a bad request."""
    if error.code is Code.NOT_FOUND and error.field:
        return HTTP[Code.INVALID_ARGUMENT]
    answer = HTTP.get(error.code, UPSTREAM)
    if error.retry_after is not None:
        return HttpAnswer(answer.status, answer.kind, error.retry_after)
    return answer
