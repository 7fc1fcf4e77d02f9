"""The gRPC services of an inference pod: synthesis (seed and v1) and load reports.

One implementation serves both the seed `TTSService` and `ttsfleet.v1.Synthesizer`:
they share message types, so only the registration differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import grpc
import numpy as np

from ttsfleet import audio, codecs, logs, tracing, wire
from ttsfleet.errors import TTSError
from ttsfleet.inference.engine import VoiceEngine
from ttsfleet.inference.metrics import InferenceMetrics
from ttsfleet.inference.scheduler import DONE, Load, Scheduler, Synthesis
from ttsfleet.inference.validation import ValidRequest, validate
from ttsfleet.inference.word_clock import WordClock
from ttsfleet.manifests import PodConfig
from ttsfleet.proto import tts_pb2, tts_pb2_grpc, ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc
from ttsfleet.rollouts import voice_revision

log = logging.getLogger(__name__)


def load_metadata(load: Load) -> tuple[tuple[str, str], ...]:
    return (
        (wire.QUEUE_DEPTH_KEY, str(load.queue_depth)),
        (wire.IN_FLIGHT_KEY, str(load.in_flight)),
    )


class _Call:
    """Bookkeeping of one RPC: request id, timing, metrics and the final status."""

    def __init__(self, method: str, metrics: InferenceMetrics) -> None:
        self.method = method
        self.voice = ""
        self.started = time.monotonic()
        self.first_audio: float | None = None
        self.samples = 0
        self.sample_rate = 0
        self._metrics = metrics

    def audio(self, samples: int, sample_rate: int) -> None:
        if self.first_audio is None:
            self.first_audio = time.monotonic()
            self._metrics.time_to_first_audio.labels(self.method, self.voice).observe(
                self.first_audio - self.started
            )
        self.samples += samples
        self.sample_rate = sample_rate

    def finish(self, code: grpc.StatusCode) -> None:
        self._metrics.requests.labels(self.method, self.voice, code.name).inc()
        if code is grpc.StatusCode.OK:
            self._metrics.latency.labels(self.method, self.voice).observe(
                time.monotonic() - self.started
            )
        if self.sample_rate:
            self._metrics.audio_seconds.labels(self.voice).inc(self.samples / self.sample_rate)
        log.info(
            "request finished",
            extra={
                "method": self.method,
                "voice": self.voice,
                "code": code.name,
                "seconds": round(time.monotonic() - self.started, 4),
                "audio_seconds": round(self.samples / self.sample_rate, 3)
                if self.sample_rate
                else 0,
            },
        )


class SynthesisService(tts_pb2_grpc.TTSServiceServicer):
    """Validates, queues and streams back synthesis requests."""

    def __init__(
        self,
        engines: Mapping[str, VoiceEngine],
        scheduler: Scheduler,
        config: PodConfig,
        metrics: InferenceMetrics,
    ) -> None:
        self._engines = engines
        self._scheduler = scheduler
        self._config = config
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def _call(
        self, method: str, request: tts_pb2.TTSRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[_Call]:
        call = _Call(method, self._metrics)
        code = grpc.StatusCode.OK
        message = ""
        try:
            rid = wire.request_id(request.request_id, wire.header(context, wire.REQUEST_ID_KEY))
            logs.request_id.set(rid)
            tracing.tag_request(rid)
            yield call
        except TTSError as error:
            code, message = error.code, error.message
        except (asyncio.CancelledError, GeneratorExit):
            call.finish(grpc.StatusCode.CANCELLED)
            raise
        finally:
            context.set_trailing_metadata(load_metadata(self._scheduler.load))
        call.finish(code)
        if code is not grpc.StatusCode.OK:
            await context.abort(code, message)

    def _check(
        self, request: tts_pb2.TTSRequest, context: grpc.aio.ServicerContext, streaming: bool
    ) -> ValidRequest:
        return validate(
            request,
            priority=wire.priority(request.priority, wire.header(context, wire.PRIORITY_KEY)),
            tenant=wire.tenant(wire.header(context, wire.TENANT_KEY)),
            streaming=streaming,
            voices=self._engines.keys(),
            default_voice=self._config.default_voice,
            max_text_length=self._config.max_text_length,
        )

    async def _pcm(
        self, valid: ValidRequest, call: _Call, unary: bool
    ) -> AsyncGenerator[tuple[bytes, int, list[tts_pb2.WordTiming]], None]:
        """Queues the request and yields (PCM16 bytes, sample rate, words) as audio arrives.

        Words (with word timings asked for) come with the piece their audio
        starts in. A unary request whose answer could outgrow the pool's
        limit is refused before it is queued, not after its audio exists.
        """
        call.voice = valid.voice
        engine = self._engines[valid.voice]
        speaker = engine.info.speakers.resolve(valid.voice, valid.speaker)
        # A full or draining pod says so before phonemizing: refusals stay instant under load.
        self._scheduler.check_room()
        utterances = await asyncio.to_thread(
            engine.utterances, valid.segments, valid.word_timestamps
        )
        if not utterances:
            raise TTSError(grpc.StatusCode.INVALID_ARGUMENT, "text has nothing to speak")
        params = dataclasses.replace(engine.default_params(valid.speed), speaker=speaker)
        work = Synthesis(engine, utterances, params, priority=valid.priority, tenant=valid.tenant)
        native = engine.info.sample_rate
        rate = valid.codec.rate(valid.sample_rate, native)
        if unary:
            codecs.check_unary_size(
                valid.codec, work.pending_seconds, rate, self._config.max_unary_bytes
            )
        # Started, not entered: this generator yields, and a span entered here would
        # be current in whatever runs between its steps.
        span = tracing.tracer.start_span(
            "inference.synthesize",
            attributes={
                "ttsfleet.voice": valid.voice,
                "ttsfleet.utterances": len(utterances),
                "ttsfleet.audio_seconds_predicted": work.pending_seconds,
            },
        )
        self._scheduler.submit(work)
        resampler = audio.Resampler(native, rate)
        words = WordClock(native, valid.word_phonemes)
        try:
            while (piece := await work.output.get()) is not DONE:
                if isinstance(piece, BaseException):
                    log.error("engine failed", exc_info=piece)
                    span.record_exception(piece)
                    raise TTSError(grpc.StatusCode.INTERNAL, f"synthesis failed: {piece}")
                if isinstance(piece, tuple):
                    words.utterance(piece)
                    continue
                if call.first_audio is None:
                    span.add_event("first audio")
                out = resampler.convert(piece)
                call.audio(out.size, rate)
                yield audio.to_pcm16(out), rate, words.audio(piece.size)
            tail = resampler.convert(np.zeros(0, np.float32), last=True)
            if tail.size:
                call.audio(tail.size, rate)
                yield audio.to_pcm16(tail), rate, []
        finally:
            self._scheduler.cancel(work)
            span.end()

    async def Synthesize(
        self, request: tts_pb2.TTSRequest, context: grpc.aio.ServicerContext
    ) -> tts_pb2.TTSResponse:
        async with self._call("Synthesize", request, context) as call:
            valid = self._check(request, context, streaming=False)
            pieces: list[bytes] = []
            words: list[tts_pb2.WordTiming] = []
            async for pcm, _, new_words in self._pcm(valid, call, unary=True):
                pieces.append(pcm)
                words += new_words
            rate = call.sample_rate
            body = await asyncio.to_thread(codecs.encode, b"".join(pieces), rate, valid.codec)
            return tts_pb2.TTSResponse(
                audio=body,
                sample_rate=rate,
                encoding=valid.codec.encoding,
                voice=valid.voice,
                request_id=logs.request_id.get(),
                audio_seconds=call.samples / rate,
                words=words,
            )
        raise AssertionError("unreachable: _call aborts on every error")

    async def StreamSynthesize(
        self, request: tts_pb2.TTSRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tts_pb2.AudioChunk]:
        async with self._call("StreamSynthesize", request, context) as call:
            valid = self._check(request, context, streaming=True)
            sent_metadata = False
            pcm = self._pcm(valid, call, unary=False)
            async for data, rate, words in codecs.encode_stream(pcm, valid.codec):
                if not sent_metadata:
                    await context.send_initial_metadata(
                        ((wire.SAMPLE_RATE_KEY, str(rate)), *load_metadata(self._scheduler.load))
                    )
                    sent_metadata = True
                yield tts_pb2.AudioChunk(chunk=data, sample_rate=rate, words=words)

    async def ListVoices(
        self, request: tts_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> tts_pb2.ListVoicesResponse:
        revisions = {voice.name: voice_revision(voice) for voice in self._config.voices}
        return tts_pb2.ListVoicesResponse(
            voices=[
                tts_pb2.Voice(
                    name=name,
                    language=engine.info.language,
                    sample_rate=engine.info.sample_rate,
                    engine=engine.info.engine,
                    revision=revisions.get(name, ""),
                    speakers=[
                        tts_pb2.Speaker(name=speaker.name, id=speaker.id)
                        for speaker in engine.info.speakers.table
                    ],
                )
                for name, engine in sorted(self._engines.items())
            ],
            default_voice=self._config.default_voice,
        )


class LoadReporterService(ttsfleet_v1_pb2_grpc.LoadReporterServicer):
    """Streams the pod's load to the router whenever it changes, until the pod drains."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def report(self) -> ttsfleet_v1_pb2.LoadReport:
        load = self._scheduler.load
        return ttsfleet_v1_pb2.LoadReport(
            queue_depth=load.queue_depth,
            in_flight=load.in_flight,
            queue_capacity=load.queue_capacity,
            draining=load.draining,
            queued_audio_seconds=load.queued_audio_seconds,
            audio_seconds_per_second=load.audio_seconds_per_second,
            batch_queue_depth=load.batch_queue_depth,
        )

    async def WatchLoad(
        self, request: ttsfleet_v1_pb2.WatchLoadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ttsfleet_v1_pb2.LoadReport]:
        min_interval = max(request.min_interval_ms or 20, 5) / 1000
        max_interval = max((request.max_interval_ms or 1000) / 1000, min_interval)
        while True:
            report = self.report()
            yield report
            if report.draining:
                return  # an open watch must not hold up the pod's shutdown
            await asyncio.sleep(min_interval)
            await self._scheduler.wait_for_change(max_interval - min_interval)


def add_to_server(
    server: grpc.aio.Server, synthesis: SynthesisService, load: LoadReporterService
) -> list[str]:
    """Registers every service; returns their full names for health and reflection."""
    tts_pb2_grpc.add_TTSServiceServicer_to_server(synthesis, server)
    ttsfleet_v1_pb2_grpc.add_SynthesizerServicer_to_server(synthesis, server)
    ttsfleet_v1_pb2_grpc.add_LoadReporterServicer_to_server(load, server)
    return [*wire.SYNTHESIS_SERVICES, wire.LOAD_REPORTER_SERVICE]
