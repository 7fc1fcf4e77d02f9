"""Failures as HTTP answers: a status code and an OpenAI-shaped JSON body that says what to change."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ttsfleet.gateway.schemas import ErrorBody
from ttsfleet.jobs.model import InvalidJob
from ttsfleet.jobs.service import NotReady, Overloaded, UnknownJob

Code = grpc.StatusCode
# What a fleet status means to an HTTP caller: (HTTP status, error type, Retry-After).
FLEET_STATUS: dict[grpc.StatusCode, tuple[int, str, int | None]] = {
    Code.INVALID_ARGUMENT: (400, "invalid_request_error", None),
    Code.NOT_FOUND: (400, "invalid_request_error", None),
    Code.RESOURCE_EXHAUSTED: (429, "overloaded", 1),
    Code.UNAVAILABLE: (503, "unavailable", 5),
    Code.DEADLINE_EXCEEDED: (504, "timeout", None),
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody.model_validate(
            {"error": {"message": message, "type": kind, "param": param, "code": None}}
        )
        self.retry_after = retry_after


def from_fleet(error: grpc.aio.AioRpcError) -> ApiError:
    status, kind, retry_after = FLEET_STATUS.get(error.code(), (502, "upstream_error", None))
    param = "voice" if error.code() is Code.NOT_FOUND else None
    return ApiError(status, error.details() or error.code().name, kind, param, retry_after)


def _response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse(error.body.model_dump(), status_code=error.status, headers=headers)


def _validation(errors: list[Any]) -> ApiError:
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    where = ".".join(location) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(400, f"{where}: {first['msg']}{more}", "invalid_request_error", where)


def as_api_error(error: Exception) -> ApiError:
    """The HTTP answer to an exception a route let through."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, RequestValidationError):
        return _validation(list(error.errors()))
    if isinstance(error, InvalidJob):
        return ApiError(400, error.message, "invalid_request_error", error.field)
    if isinstance(error, Overloaded):
        return ApiError(429, str(error), "overloaded", None, error.retry_after)
    if isinstance(error, UnknownJob):
        return ApiError(404, str(error), "not_found")
    if isinstance(error, NotReady):
        return ApiError(409, str(error), "not_ready")
    raise error


def install(app: FastAPI) -> None:
    """Registers the handler that gives every failure the same JSON shape."""

    async def handle(_: Request, error: Exception) -> JSONResponse:
        return _response(as_api_error(error))

    for kind in (ApiError, RequestValidationError, InvalidJob, Overloaded, UnknownJob, NotReady):
        app.add_exception_handler(kind, handle)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {
        status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses
    }


DESCRIPTIONS = {
    400: "The request is invalid; `error.param` names the field.",
    404: "No such job.",
    409: "The job has no audio yet (or failed).",
    429: "Overloaded: retry after the Retry-After header's seconds.",
    502: "The fleet answered with an unexpected error.",
    503: "No inference pod is ready; retry after Retry-After seconds.",
    504: "The fleet did not answer in time.",
}
