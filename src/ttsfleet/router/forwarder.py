"""The wire: passes synthesis calls through to the picked pod, bytes in and bytes out.

Requests are parsed only to learn their voice and request id; the original
bytes go upstream (with the fleet's default voice appended when the request
names none) and the pod's response bytes come back untouched. The client's
deadline becomes the upstream timeout, and a client that goes away cancels
the upstream call. A call that fails before any audio has been sent to the
client is tried once more on another pod; after audio has been sent, the
error is passed on: replaying it would duplicate audio. A long text is split
at sentences and its pieces forwarded to several pods at once
(`ttsfleet.pieces`, `piece_requests.py`); each piece has its own retry, and
the client gets the pieces' audio in order. Pieces are streamed as PCM16
and the router encodes the joined audio as the caller asked; a unary
request too long for one answer is refused before any piece is sent.

Every upstream call carries the request's priority class and its caller
(tenant) as metadata, so the pod can order its queue; batch requests are
shed first when the pool is saturated (`batch_room_share`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from ttsfleet import codecs, logs, text, tracing, wire
from ttsfleet.errors import POD_FAULTS, RETRY_ON_ANOTHER_POD, TTSError
from ttsfleet.pieces import fan_out
from ttsfleet.proto import tts_pb2
from ttsfleet.router import picker as picking
from ttsfleet.router import revisions
from ttsfleet.router.endpoints import Candidate, Datastore, Endpoint
from ttsfleet.router.metrics import RouterMetrics
from ttsfleet.router.piece_requests import (
    encoded_chunks,
    joined_response,
    piece_request,
    piece_template,
    retimed,
)
from ttsfleet.router.saturation import saturated
from ttsfleet.router.security import caller_name
from ttsfleet.router.settings import RouterSettings
from ttsfleet.router.wake import WakeUps
from ttsfleet.wire import Priority

log = logging.getLogger(__name__)

# Response headers the client gets from the pod; load headers stay inside the fleet.
CLIENT_HEADERS = (wire.SAMPLE_RATE_KEY,)
Code = grpc.StatusCode


@dataclass(frozen=True, slots=True)
class Inbound:
    """A request's bytes and the fields routing and fan-out need."""

    raw: bytes
    voice: str
    request_id: str
    text: str
    encoding: tts_pb2.AudioEncoding
    sample_rate: int
    speed: float
    priority: int  # the field, as sent (see wire.priority)
    text_format: tts_pb2.TextFormat


def read_request(raw: bytes) -> Inbound:
    request = tts_pb2.TTSRequest.FromString(raw)
    return Inbound(
        raw,
        request.voice,
        request.request_id,
        request.text,
        request.encoding,
        request.sample_rate,
        request.speed,
        request.priority,
        request.text_format,
    )


@functools.lru_cache(maxsize=64)
def _voice_field(voice: str) -> bytes:
    """The encoded `voice` field: appended to a message, it sets the voice (the last value wins)."""
    return tts_pb2.TTSRequest(voice=voice).SerializeToString()


class Forwarder:
    """Serves the synthesis methods of both services by forwarding them."""

    def __init__(
        self,
        datastore: Datastore,
        picker: picking.Picker,
        metrics: RouterMetrics,
        settings: RouterSettings,
        wake_ups: WakeUps | None = None,
    ) -> None:
        self.datastore = datastore
        self.metrics = metrics
        self.settings = settings
        self._picker = picker
        self._draw = random.Random()  # canary splits: one draw per pick
        self._picks = itertools.count(1)
        self._wake_ups = wake_ups or WakeUps(datastore, metrics, settings, None)

    def method_handlers(self, service: str) -> dict[str, grpc.RpcMethodHandler]:
        """The pass-through handlers of one service's Synthesize and StreamSynthesize."""
        return {
            "Synthesize": grpc.unary_unary_rpc_method_handler(
                functools.partial(self._unary, service),
                request_deserializer=read_request,
            ),
            "StreamSynthesize": grpc.unary_stream_rpc_method_handler(
                functools.partial(self._stream, f"/{service}/StreamSynthesize"),
                request_deserializer=read_request,
            ),
        }

    def _pieces(self, request: Inbound) -> list[str]:
        """The texts to forward: the request's own, or its pieces when it is long."""
        limit = self.settings.max_text_chars
        if len(request.text) > limit:
            raise TTSError(
                Code.INVALID_ARGUMENT,
                f"text is {len(request.text)} characters; the limit is {limit}",
            )
        return self.settings.fanout.pieces(request.text, request.text_format)

    async def _unary(
        self, service: str, request: Inbound, context: grpc.aio.ServicerContext
    ) -> bytes:
        async with _Exchange(self, "Synthesize", request, context) as exchange:
            pieces = self._pieces(request)
            if len(pieces) > 1:
                codec = codecs.codec(request.encoding, streaming=False)
                rate = codec.source_rate(request.sample_rate)
                codecs.check_unary_size(
                    codec,
                    text.speech_seconds_bound(request.text, request.speed or 1.0),
                    rate or codecs.NATIVE_RATE_BOUND,
                    self.settings.max_unary_bytes,
                )
                chunks = fan_out(
                    list(enumerate(pieces)),
                    functools.partial(
                        self._stream_piece, f"/{service}/StreamSynthesize", exchange, rate
                    ),
                    self.settings.fanout.parallel,
                )
                pcm = [chunk async for chunk in retimed(chunks, exchange.timed)]
                response = await asyncio.to_thread(
                    joined_response, pcm, codec, exchange.voice, exchange.request_id
                )
                await exchange.deliver(None, {})
                return response
            return await self._unary_tries(
                f"/{service}/Synthesize", exchange, exchange.whole(), send_headers=True
            )
        raise AssertionError("unreachable: an exchange ends with a response or an abort")

    async def _unary_tries(
        self, path: str, exchange: _Exchange, tries: _Tries, send_headers: bool
    ) -> bytes:
        """One upstream unary call, on another pod if the first fails (see _stream_tries)."""
        while tries.pending:
            async with exchange.attempt(tries) as endpoint:
                call = exchange.send(endpoint.channel.unary_unary(path), tries.payload)
                answer: bytes = await call
                if send_headers:
                    await exchange.deliver(endpoint, await call.initial_metadata())
                self.observe(endpoint, await call.trailing_metadata())
        return answer

    async def _stream(
        self, path: str, request: Inbound, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async with _Exchange(self, "StreamSynthesize", request, context) as exchange:
            pieces = self._pieces(request)
            if len(pieces) > 1:
                codec = codecs.codec(request.encoding, streaming=True)
                rate = codec.source_rate(request.sample_rate)
                chunks = fan_out(
                    list(enumerate(pieces)),
                    functools.partial(self._stream_piece, path, exchange, rate),
                    self.settings.fanout.parallel,
                )
                async for chunk in encoded_chunks(retimed(chunks, exchange.timed), codec):
                    if not exchange.delivered:
                        rate = tts_pb2.AudioChunk.FromString(chunk).sample_rate
                        await exchange.deliver(None, {wire.SAMPLE_RATE_KEY: str(rate)})
                    yield chunk
                return
            tries = exchange.whole()
            async for chunk in self._stream_tries(path, exchange, tries, send_headers=True):
                yield chunk

    async def _stream_tries(
        self, path: str, exchange: _Exchange, tries: _Tries, send_headers: bool
    ) -> AsyncIterator[bytes]:
        """Streams one upstream request, on another pod if the first fails before any audio.

        With send_headers, the pod's response headers go to the client before its
        first chunk; a piece of a long text leaves that to the fan-out loop.
        """
        while tries.pending:
            async with exchange.attempt(tries) as endpoint:
                call = exchange.send(endpoint.channel.unary_stream(path), tries.payload)
                try:
                    async for chunk in call:
                        if not tries.audio_sent:
                            tries.audio_sent = True
                            self.datastore.first_audio(endpoint, time.monotonic() - tries.sent_at)
                            if send_headers:
                                await exchange.deliver(endpoint, await call.initial_metadata())
                        yield chunk
                    self.observe(endpoint, await call.trailing_metadata())
                finally:
                    call.cancel()  # a no-op once finished; stops the pod when the client left

    async def _stream_piece(
        self, path: str, exchange: _Exchange, sample_rate: int, piece: tuple[int, str]
    ) -> AsyncIterator[tuple[int, bytes]]:
        """One numbered piece of a long text, streamed as PCM16 with retries of its own."""
        index, text = piece
        tries = _Tries(
            piece_request(exchange.piece_template, text, sample_rate),
            exchange.audio_estimate(text),
        )
        async for chunk in self._stream_tries(path, exchange, tries, send_headers=False):
            yield index, chunk

    async def choose(
        self,
        voice: str,
        tried: Sequence[str],
        priority: Priority,
        audio_seconds: float,
        time_left: float | None = None,
    ) -> tuple[Endpoint, float]:
        """Picks a pod for `voice`, waiting briefly for room if allowed; raises TTSError.

        Returns the pod and the time it is predicted to take (`picker.predicted_finish`)
        for a request of `audio_seconds`. A request for a pool asleep at zero pods is
        held while the pool wakes (`wake.py`), within `time_left` (the caller's
        deadline); its `audio_seconds` are shown as the held demand.
        """
        store = self.datastore
        if voice and voice not in store.voices:
            if not store.voices:
                raise TTSError(Code.UNAVAILABLE, "no inference pods have been discovered")
            raise TTSError(
                Code.NOT_FOUND,
                f"unknown voice {voice!r}; this fleet serves: {', '.join(sorted(store.voices))}",
            )
        batch = priority is Priority.BATCH
        share = self.settings.batch_room_share if batch else 1.0
        give_up = time.monotonic() + self.settings.saturation_wait
        while True:
            candidates = revisions.split(
                store.candidates(voice, tried), store.weights, self._draw.random()
            )
            turn = picking.turn(candidates, self.settings.stale_after, share)
            if turn:
                picked = self._picker.choose(turn, audio_seconds)
                chosen = store.get(picked.address)
                assert chosen is not None, "candidates come from the datastore"
                self.metrics.picks.labels(chosen.pool, chosen.address).inc()
                self.metrics.revision_picks.labels(chosen.pool, chosen.revision).inc()
                store.sent(chosen, audio_seconds)
                return chosen, self._predict(picked, turn, audio_seconds)
            sleeping = None if candidates else self._wake_ups.sleeping_pool(voice)
            if sleeping:
                await self._wake_ups.hold(sleeping, voice, time_left, audio_seconds)
                continue
            serving = f"voice {voice!r}" if voice else "the default voice"
            if not saturated(candidates, self.settings.stale_after, share):
                raise TTSError(Code.UNAVAILABLE, f"no ready pod serves {serving}")
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                self.metrics.shed.labels(candidates[0].pool, priority).inc()
                if batch:
                    raise TTSError(
                        Code.RESOURCE_EXHAUSTED,
                        f"every pod serving {serving} is too busy for batch work; retry later",
                        retry_after=self.settings.batch_retry_after,
                    )
                raise TTSError(
                    Code.RESOURCE_EXHAUSTED,
                    f"every pod serving {serving} has a full queue; retry later",
                )
            await store.wait_for_change(remaining)

    def _predict(self, picked: Candidate, turn: Sequence[Candidate], audio_seconds: float) -> float:
        """The pick's predicted finish; one pick in `pick_log_every` is logged with the runner-up's."""
        fallback = picking.fallback_speed(turn)
        predicted = picking.predicted_finish(picked, audio_seconds, fallback)
        every = self.settings.pick_log_every
        if every and next(self._picks) % every == 0:
            others = {
                c.address: picking.predicted_finish(c, audio_seconds, fallback)
                for c in turn
                if c is not picked
            }
            runner_up = min(others, key=others.__getitem__, default="")
            log.info(
                "pod picked",
                extra={
                    "pod": picked.address,
                    "predicted_seconds": round(predicted, 4),
                    "runner_up": runner_up,
                    "runner_up_seconds": round(others[runner_up], 4) if runner_up else None,
                    "audio_seconds": round(audio_seconds, 3),
                    "picker": self.settings.picker,
                },
            )
        return predicted

    def observe(self, endpoint: Endpoint, metadata: Any) -> None:
        """Takes the pod's queue depth from response metadata: load news at no extra cost."""
        depth = metadata.get(wire.QUEUE_DEPTH_KEY) if metadata else None
        if depth is not None:
            self.datastore.report(endpoint, int(depth))
            self.metrics.queue_depth.labels(endpoint.pool, endpoint.address).set(int(depth))

    def failed(self, endpoint: Endpoint, error: grpc.aio.AioRpcError) -> None:
        """Counts a pod's fault towards ejection; a refusal's metadata still tells its load."""
        self.observe(endpoint, error.trailing_metadata())
        if error.code() in POD_FAULTS and self.datastore.failed(endpoint):
            self.metrics.ejections.labels(endpoint.pool, endpoint.address).inc()
            log.warning("pod ejected", extra={"pod": endpoint.address, "pool": endpoint.pool})


class _Tries:
    """The attempts of one upstream request: the whole call, or one piece of a long one."""

    def __init__(self, payload: bytes, audio_seconds: float) -> None:
        self.payload = payload
        # The audio it should make (from its text): what picking weighs it by.
        self.audio_seconds = audio_seconds
        # When the current try was sent, and how long its pod was predicted to take.
        self.sent_at = 0.0
        self.predicted = 0.0
        self.tried: list[str] = []
        self.last_error: grpc.aio.AioRpcError | None = None
        self.pending = True
        # Once audio of this request went towards the client, it is never retried.
        self.audio_sent = False


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
        header = wire.header(context, wire.REQUEST_ID_KEY)
        self.request_id = request.request_id or header or uuid.uuid4().hex
        logs.request_id.set(self.request_id)
        tracing.tag_request(self.request_id)
        # A request-id field travels in the bytes; otherwise the header carries it.
        self.metadata = () if request.request_id else ((wire.REQUEST_ID_KEY, self.request_id),)
        default = forwarder.datastore.default_voice
        self.voice = request.voice or default
        self.payload = request.raw
        if default and not request.voice:
            self.payload += _voice_field(default)
        self._request = request
        self.attempts = 0
        self.delivered = False
        self.pool = ""
        self.pod = ""

    async def __aenter__(self) -> _Exchange:
        return self

    @functools.cached_property
    def priority(self) -> Priority:
        """The request's class (read inside the exchange: a bad value is the caller's error)."""
        header = wire.header(self._context, wire.PRIORITY_KEY)
        return wire.priority(self._request.priority, header)

    @functools.cached_property
    def upstream_metadata(self) -> tuple[tuple[str, str], ...]:
        """The request id, class and caller: the caller's tenant, else its token's name."""
        context = self._context
        tenant = wire.tenant(wire.header(context, wire.TENANT_KEY)) or caller_name(
            wire.header(context, "authorization")
        )
        who = ((wire.TENANT_KEY, tenant),) if tenant else ()
        return (*self.metadata, (wire.PRIORITY_KEY, self.priority.value), *who)

    def audio_estimate(self, text_: str) -> float:
        return text.speech_seconds_estimate(text_, self._request.speed or 1.0)

    def whole(self) -> _Tries:
        """The tries of the request as one upstream call."""
        return _Tries(self.payload, self.audio_estimate(self._request.text))

    async def __aexit__(self, _: object, error: BaseException | None, __: object) -> None:
        """Records how the call ended and turns router and pod errors into the client's status."""
        if isinstance(error, TTSError):
            self._finish(error.code)
            if error.retry_after is not None:
                self._context.set_trailing_metadata(
                    ((wire.RETRY_AFTER_KEY, str(error.retry_after)),)
                )
            await self._context.abort(error.code, error.message)
        elif isinstance(error, grpc.aio.AioRpcError):
            self._finish(error.code())
            await self._context.abort(error.code(), error.details() or "")
        elif isinstance(error, Exception):
            self._finish(Code.INTERNAL)
        else:  # success, or the client went away (cancellation, generator closed)
            self._finish(Code.OK if error is None else Code.CANCELLED)

    @contextlib.asynccontextmanager
    async def attempt(self, tries: _Tries) -> AsyncIterator[Endpoint]:
        """One try on one pod; a retryable failure before any audio leaves `tries.pending` set."""
        forwarder = self._forwarder
        try:
            endpoint, tries.predicted = await forwarder.choose(
                self.voice,
                tries.tried,
                self.priority,
                tries.audio_seconds,
                self._context.time_remaining(),
            )
        except TTSError:
            if tries.last_error:  # no other pod to retry on: the pod's own answer stands
                raise tries.last_error from None
            raise
        self.pool, self.pod = endpoint.pool, endpoint.address
        tries.tried.append(endpoint.address)
        self.attempts += 1
        endpoint.in_flight += 1
        tries.sent_at = time.monotonic()
        try:
            yield endpoint
        except grpc.aio.AioRpcError as error:
            forwarder.failed(endpoint, error)
            if (
                tries.audio_sent
                or error.code() not in RETRY_ON_ANOTHER_POD
                or len(tries.tried) > forwarder.settings.retries
                or self._context.cancelled()
            ):
                raise
            tries.last_error = error
            forwarder.metrics.retries.labels(endpoint.pool).inc()
            log.info(
                "retrying on another pod",
                extra={"pod": endpoint.address, "code": error.code().name},
            )
        else:
            tries.pending = False
            forwarder.datastore.succeeded(endpoint)
            if tries.predicted > 0:
                took = time.monotonic() - tries.sent_at
                forwarder.metrics.finish_ratio.labels(endpoint.pool).observe(took / tries.predicted)
        finally:
            endpoint.in_flight -= 1

    @property
    def timed(self) -> bool:
        """Whether the pieces carry word times, which must be put on the request's clock."""
        template = self.piece_template
        return template.word_timestamps or template.word_phonemes

    @functools.cached_property
    def piece_template(self) -> tts_pb2.TTSRequest:
        """The request as every piece of a long text starts from it (parsed once)."""
        return piece_template(self.payload)

    def send(self, method: Any, payload: bytes) -> Any:
        """Starts an upstream call: the bytes, the request id, the client's remaining time."""
        return method(
            payload, metadata=self.upstream_metadata, timeout=self._context.time_remaining()
        )

    async def deliver(self, endpoint: Endpoint | None, headers: Any) -> None:
        """Sends the client its response headers: from here on, nothing is retried.

        `endpoint` is the pod that answered, or None when several did (fan-out).
        """
        self.delivered = True
        if endpoint is not None:
            self._forwarder.observe(endpoint, headers)
        metadata = [(key, headers[key]) for key in CLIENT_HEADERS if headers and key in headers]
        await self._context.send_initial_metadata(
            [*metadata, (wire.REQUEST_ID_KEY, self.request_id)]
        )
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
                "attempts": self.attempts,
                "seconds": round(seconds, 4),
            },
        )
