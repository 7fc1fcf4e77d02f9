"""The wire: passes synthesis calls through to the picked pod, bytes in and bytes out.

Requests are parsed only to learn their voice and request id; the original
bytes go upstream (with the fleet's default voice appended when the request
names none) and the pod's response bytes come back untouched. The client's
deadline becomes the upstream timeout, and a client that goes away cancels
the upstream call. A call that fails before any audio has been sent to the
client is tried once more on another pod; after audio has been sent, the
error is passed on: replaying it would duplicate audio.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from ttsfleet import logs
from ttsfleet.proto import tts_pb2
from ttsfleet.router import picker as picking
from ttsfleet.router.endpoints import Datastore, Endpoint
from ttsfleet.router.metrics import RouterMetrics
from ttsfleet.router.saturation import saturated
from ttsfleet.router.settings import RouterSettings

log = logging.getLogger(__name__)

SERVICES = ("TTSService", "ttsfleet.v1.Synthesizer")
REQUEST_ID_KEY = "x-request-id"
QUEUE_DEPTH_KEY = "x-ttsfleet-queue-depth"
# Response headers the client gets from the pod; load headers stay inside the fleet.
CLIENT_HEADERS = ("x-tts-sample-rate",)
Code = grpc.StatusCode
# Worth another pod: the first could not take the call or broke before answering.
RETRYABLE = frozenset(
    {
        Code.UNAVAILABLE,
        Code.RESOURCE_EXHAUSTED,
        Code.INTERNAL,
        Code.UNKNOWN,
        Code.ABORTED,
        Code.CANCELLED,
    }
)
# Counted towards ejection. A full queue is load, not a fault.
POD_FAULTS = RETRYABLE - {Code.RESOURCE_EXHAUSTED}


@dataclass(frozen=True, slots=True)
class Inbound:
    """A request's bytes and the two fields routing needs."""

    raw: bytes
    voice: str
    request_id: str


def read_request(raw: bytes) -> Inbound:
    request = tts_pb2.TTSRequest.FromString(raw)
    return Inbound(raw, request.voice, request.request_id)


@functools.lru_cache(maxsize=64)
def _voice_field(voice: str) -> bytes:
    """The encoded `voice` field: appended to a message, it sets the voice (the last value wins)."""
    return tts_pb2.TTSRequest(voice=voice).SerializeToString()


class Refused(Exception):
    """The router answers the call itself with this status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Forwarder:
    """Serves the synthesis methods of both services by forwarding them."""

    def __init__(
        self,
        datastore: Datastore,
        picker: picking.Picker,
        metrics: RouterMetrics,
        settings: RouterSettings,
    ) -> None:
        self.datastore = datastore
        self.metrics = metrics
        self.settings = settings
        self._picker = picker

    def method_handlers(self, service: str) -> dict[str, grpc.RpcMethodHandler]:
        """The pass-through handlers of one service's Synthesize and StreamSynthesize."""
        return {
            "Synthesize": grpc.unary_unary_rpc_method_handler(
                functools.partial(self._unary, f"/{service}/Synthesize"),
                request_deserializer=read_request,
            ),
            "StreamSynthesize": grpc.unary_stream_rpc_method_handler(
                functools.partial(self._stream, f"/{service}/StreamSynthesize"),
                request_deserializer=read_request,
            ),
        }

    async def _unary(self, path: str, request: Inbound, context: grpc.aio.ServicerContext) -> bytes:
        async with _Exchange(self, "Synthesize", request, context) as exchange:
            while exchange.pending:
                async with exchange.attempt() as endpoint:
                    call = exchange.send(endpoint.channel.unary_unary(path))
                    response: bytes = await call
                    await exchange.deliver(endpoint, await call.initial_metadata())
                    self.observe(endpoint, await call.trailing_metadata())
                    return response
        raise AssertionError("unreachable: an exchange ends with a response or an abort")

    async def _stream(
        self, path: str, request: Inbound, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async with _Exchange(self, "StreamSynthesize", request, context) as exchange:
            while exchange.pending:
                async with exchange.attempt() as endpoint:
                    call = exchange.send(endpoint.channel.unary_stream(path))
                    try:
                        async for chunk in call:
                            if not exchange.delivered:
                                await exchange.deliver(endpoint, await call.initial_metadata())
                            yield chunk
                        self.observe(endpoint, await call.trailing_metadata())
                    finally:
                        call.cancel()  # a no-op once finished; stops the pod when the client left

    async def choose(self, voice: str, tried: Sequence[str]) -> Endpoint:
        """Picks a pod for `voice`, waiting briefly for room if allowed; raises Refused."""
        store = self.datastore
        if voice and voice not in store.voices:
            if not store.voices:
                raise Refused(Code.UNAVAILABLE, "no inference pods have been discovered")
            raise Refused(
                Code.NOT_FOUND,
                f"unknown voice {voice!r}; this fleet serves: {', '.join(sorted(store.voices))}",
            )
        give_up = time.monotonic() + self.settings.saturation_wait
        while True:
            candidates = store.candidates(voice, tried)
            turn = picking.turn(candidates, self.settings.stale_after)
            if turn:
                chosen = store.get(self._picker.choose(turn).address)
                assert chosen is not None, "candidates come from the datastore"
                self.metrics.picks.labels(chosen.pool, chosen.address).inc()
                return chosen
            serving = f"voice {voice!r}" if voice else "the default voice"
            if not saturated(candidates, self.settings.stale_after):
                raise Refused(Code.UNAVAILABLE, f"no ready pod serves {serving}")
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise Refused(
                    Code.RESOURCE_EXHAUSTED,
                    f"every pod serving {serving} has a full queue; retry later",
                )
            await store.wait_for_change(remaining)

    def observe(self, endpoint: Endpoint, metadata: Any) -> None:
        """Takes the pod's queue depth from response metadata: load news at no extra cost."""
        depth = metadata.get(QUEUE_DEPTH_KEY) if metadata else None
        if depth is not None:
            self.datastore.report(endpoint, int(depth))
            self.metrics.queue_depth.labels(endpoint.pool, endpoint.address).set(int(depth))

    def failed(self, endpoint: Endpoint, error: grpc.aio.AioRpcError) -> None:
        """Counts a pod's fault towards ejection; a refusal's metadata still tells its load."""
        self.observe(endpoint, error.trailing_metadata())
        if error.code() in POD_FAULTS and self.datastore.failed(endpoint):
            self.metrics.ejections.labels(endpoint.pool, endpoint.address).inc()
            log.warning("pod ejected", extra={"pod": endpoint.address, "pool": endpoint.pool})


class _Exchange:
    """One client call through the router: request id, attempts, status, metrics and log."""

    def __init__(
        self,
        forwarder: Forwarder,
        method: str,
        request: Inbound,
        context: grpc.aio.ServicerContext,
    ) -> None:
        self._forwarder = forwarder
        self._context = context
        self.method = method
        self.started = time.monotonic()
        self.request_id = request.request_id or _header(context, REQUEST_ID_KEY) or uuid.uuid4().hex
        logs.request_id.set(self.request_id)
        # A request-id field travels in the bytes; otherwise the header carries it.
        self.metadata = () if request.request_id else ((REQUEST_ID_KEY, self.request_id),)
        default = forwarder.datastore.default_voice
        self.voice = request.voice or default
        self.payload = request.raw
        if default and not request.voice:
            self.payload += _voice_field(default)
        self.tried: list[str] = []
        self.last_error: grpc.aio.AioRpcError | None = None
        self.pending = True
        self.delivered = False
        self.pool = ""
        self.pod = ""

    async def __aenter__(self) -> _Exchange:
        return self

    async def __aexit__(self, _: object, error: BaseException | None, __: object) -> None:
        """Records how the call ended and turns router and pod errors into the client's status."""
        if isinstance(error, Refused):
            self._finish(error.code)
            await self._context.abort(error.code, error.message)
        elif isinstance(error, grpc.aio.AioRpcError):
            self._finish(error.code())
            await self._context.abort(error.code(), error.details() or "")
        elif isinstance(error, Exception):
            self._finish(Code.INTERNAL)
        else:  # success, or the client went away (cancellation, generator closed)
            self._finish(Code.OK if error is None else Code.CANCELLED)

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[Endpoint]:
        """One try on one pod; a retryable failure before any audio leaves `pending` set."""
        forwarder = self._forwarder
        try:
            endpoint = await forwarder.choose(self.voice, self.tried)
        except Refused:
            if self.last_error:  # no other pod to retry on: the pod's own answer stands
                raise self.last_error from None
            raise
        self.pool, self.pod = endpoint.pool, endpoint.address
        self.tried.append(endpoint.address)
        endpoint.in_flight += 1
        try:
            yield endpoint
        except grpc.aio.AioRpcError as error:
            forwarder.failed(endpoint, error)
            if (
                self.delivered
                or error.code() not in RETRYABLE
                or len(self.tried) > forwarder.settings.retries
                or self._context.cancelled()
            ):
                raise
            self.last_error = error
            forwarder.metrics.retries.labels(endpoint.pool).inc()
            log.info(
                "retrying on another pod",
                extra={"pod": endpoint.address, "code": error.code().name},
            )
        else:
            self.pending = False
            forwarder.datastore.succeeded(endpoint)
        finally:
            endpoint.in_flight -= 1

    def send(self, method: Any) -> Any:
        """Starts the upstream call: the request's bytes, its id, the client's remaining time."""
        return method(self.payload, metadata=self.metadata, timeout=self._context.time_remaining())

    async def deliver(self, endpoint: Endpoint, headers: Any) -> None:
        """Sends the client its response headers: from here on, nothing is retried."""
        self.delivered = True
        self._forwarder.observe(endpoint, headers)
        metadata = [(key, headers[key]) for key in CLIENT_HEADERS if headers and key in headers]
        await self._context.send_initial_metadata([*metadata, (REQUEST_ID_KEY, self.request_id)])
        if self.method == "StreamSynthesize":
            self._forwarder.metrics.time_to_first_audio.labels(self.pool).observe(
                time.monotonic() - self.started
            )

    def _finish(self, code: grpc.StatusCode) -> None:
        metrics = self._forwarder.metrics
        seconds = time.monotonic() - self.started
        metrics.requests.labels(self.method, self.pool, self.pod, code.name).inc()
        if code is Code.OK:
            metrics.latency.labels(self.method, self.pool).observe(seconds)
        log.info(
            "request finished",
            extra={
                "method": self.method,
                "voice": self.voice,
                "pool": self.pool,
                "pod": self.pod,
                "code": code.name,
                "attempts": len(self.tried),
                "seconds": round(seconds, 4),
            },
        )


def _header(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None
