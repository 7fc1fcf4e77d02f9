"""The fleet as the jobs worker and the HTTP gateway see it: one gRPC endpoint (the router).

Long texts are split into sentence-aligned pieces and each piece is sent as
its own request, so the router spreads them over its pods; `fan_out` keeps
the audio in text order. Streaming (the gateway) passes each piece on live;
whole-text synthesis (jobs) collects each piece before using it, so a piece
that fails is retried with backoff without duplicating audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import grpc

from ttsfleet import tracing, wire
from ttsfleet.errors import TTSError
from ttsfleet.jobs.retry import RetryPolicy
from ttsfleet.pieces import FanoutPolicy, fan_out
from ttsfleet.proto import tts_pb2, tts_pb2_grpc
from ttsfleet.word_offsets import PieceClock

log = logging.getLogger(__name__)

NumberedPiece = tuple[int, str]


class FleetClient:
    """A channel to the fleet's front door and the requests long-form synthesis makes on it."""

    def __init__(
        self,
        address: str,
        fanout: FanoutPolicy | None = None,
        retry: RetryPolicy | None = None,
        piece_timeout: float = 300.0,
        token: str = "",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.fanout = fanout or FanoutPolicy()
        self.retry = retry or RetryPolicy()
        self._timeout = piece_timeout
        self._metadata = wire.bearer(token)
        # gRPC's reconnect backoff grows to 120 s by default: a router back from an outage
        # would sit unused for minutes. Five seconds at most.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 5000),
        ]
        traced = tracing.client_interceptors()
        self._channel = (
            grpc.aio.secure_channel(address, credentials, options, interceptors=traced)
            if credentials
            else grpc.aio.insecure_channel(address, options, interceptors=traced)
        )
        self._stub = tts_pb2_grpc.TTSServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def voices(self) -> tts_pb2.ListVoicesResponse:
        voices: tts_pb2.ListVoicesResponse = await self._stub.ListVoices(
            tts_pb2.ListVoicesRequest(), timeout=10.0, metadata=self._metadata
        )
        return voices

    async def stream(
        self, request: tts_pb2.TTSRequest, tenant: str = ""
    ) -> AsyncGenerator[tts_pb2.AudioChunk, None]:
        """PCM16 chunks of the whole text in order, word times on its clock; gRPC errors pass
        through.

        `tenant` names the caller to the fleet, whose pods share capacity fairly
        between tenants.
        """
        pieces = list(enumerate(self.fanout.pieces(request.text, request.text_format)))
        live = functools.partial(self._numbered_stream, request, tenant)
        clock = PieceClock()
        async with contextlib.aclosing(fan_out(pieces, live, self.fanout.parallel)) as chunks:
            async for index, chunk in chunks:
                clock.place(index, chunk)
                yield chunk

    async def synthesize(
        self,
        request: tts_pb2.TTSRequest,
        progress: Callable[[int, int], None],
        sink: Callable[[bytes, int], Awaitable[None]],
        tenant: str = "",
    ) -> int:
        """Hands the whole text's PCM16 (and its rate) to `sink` in order, calling
        `progress(done, total)` as
        pieces finish; returns the sample rate. Only the pieces in flight are held in memory.

        Raises TTSError once a piece failed permanently or used up its attempts
        (`sink` may have had part of the audio by then: the caller discards it).
        """
        pieces = list(enumerate(self.fanout.pieces(request.text, request.text_format)))
        done = 0
        progress(done, len(pieces))

        async def whole(piece: NumberedPiece) -> AsyncIterator[list[tts_pb2.AudioChunk]]:
            nonlocal done
            chunks = await self._piece_with_retries(request, tenant, piece)
            done += 1
            progress(done, len(pieces))
            yield chunks

        rates: set[int] = set()
        async for chunks in fan_out(pieces, whole, self.fanout.parallel):
            for chunk in chunks:
                rates.add(chunk.sample_rate)
                await sink(chunk.chunk, chunk.sample_rate)
        if len(rates) != 1:
            raise TTSError(grpc.StatusCode.INTERNAL, f"pieces came at sample rates {rates}")
        return rates.pop()

    async def _piece_with_retries(
        self, template: tts_pb2.TTSRequest, tenant: str, piece: NumberedPiece
    ) -> list[tts_pb2.AudioChunk]:
        for attempt in range(1, self.retry.piece_attempts + 1):
            try:
                return [chunk async for chunk in self._piece_stream(template, tenant, piece)]
            except grpc.aio.AioRpcError as error:
                failure = TTSError.from_rpc(error)
                if failure.permanent or attempt == self.retry.piece_attempts:
                    raise failure from error
                delay = self.retry.delay(attempt)
                log.info(
                    "piece failed; retrying",
                    extra={"piece": piece[0], "code": error.code().name, "in_seconds": delay},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _numbered_stream(
        self, template: tts_pb2.TTSRequest, tenant: str, piece: NumberedPiece
    ) -> AsyncIterator[tuple[int, tts_pb2.AudioChunk]]:
        async for chunk in self._piece_stream(template, tenant, piece):
            yield piece[0], chunk

    async def _piece_stream(
        self, template: tts_pb2.TTSRequest, tenant: str, piece: NumberedPiece
    ) -> AsyncIterator[tts_pb2.AudioChunk]:
        index, text = piece
        request = tts_pb2.TTSRequest()
        request.CopyFrom(template)
        request.text = text
        request.encoding = tts_pb2.AUDIO_ENCODING_PCM16
        if template.request_id:
            request.request_id = f"{template.request_id}.{index}"
        metadata = (*self._metadata, (wire.TENANT_KEY, tenant)) if tenant else self._metadata
        call = self._stub.StreamSynthesize(request, timeout=self._timeout, metadata=metadata)
        try:
            async for chunk in call:
                yield chunk
        finally:
            call.cancel()
