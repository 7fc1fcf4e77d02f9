"""Failures as HTTP answers: a status code and an OpenAI-shaped JSON body that says what to change.

Routes raise `TTSError` (or let the fleet's gRPC errors and request
validation through); the status comes from `ttsfleet.errors.http_answer`.
"""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ttsfleet.errors import TTSError, http_answer
from ttsfleet.gateway.schemas import ErrorBody


def error_response(error: TTSError) -> JSONResponse:
    """The JSON answer for an error (an ASGI app: middleware can send it too)."""
    answer = http_answer(error)
    body = ErrorBody.model_validate(
        {
            "error": {
                "message": error.message,
                "type": answer.kind,
                "param": error.field,
                "code": None,
            }
        }
    )
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after is not None else {}
    if answer.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body.model_dump(), status_code=answer.status, headers=headers)


def _validation(errors: list[Any]) -> TTSError:
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    where = ".".join(location) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return TTSError(grpc.StatusCode.INVALID_ARGUMENT, f"{where}: {first['msg']}{more}", field=where)


def as_tts_error(error: Exception) -> TTSError:
    """The error of ours behind an exception a route let through."""
    if isinstance(error, TTSError):
        return error
    if isinstance(error, RequestValidationError):
        return _validation(list(error.errors()))
    if isinstance(error, grpc.aio.AioRpcError):
        return TTSError.from_rpc(error)
    raise error


def install(app: FastAPI) -> None:
    """Registers the handler that gives every failure the same JSON shape."""

    async def handle(_: Request, error: Exception) -> JSONResponse:
        return error_response(as_tts_error(error))

    for kind in (TTSError, RequestValidationError, grpc.aio.AioRpcError):
        app.add_exception_handler(kind, handle)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {
        status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses
    }


DESCRIPTIONS = {
    400: "The request is invalid; `error.param` names the field.",
    401: "No API key, or an unknown one.",
    404: "No such job (of this caller).",
    409: "The job has no audio yet (or failed); or, to re-drive, it is not dead-lettered.",
    413: "The request body is over the gateway's limit.",
    422: "The idempotency key was used before with a different request.",
    429: "Overloaded, or over this caller's rate or backlog: retry after Retry-After seconds.",
    502: "The fleet answered with an unexpected error.",
    503: "No inference pod is ready; retry after Retry-After seconds.",
    504: "The fleet did not answer in time.",
}
