"""The inference pod over real gRPC on loopback, with the real Piper voice."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import numpy as np
import pytest
from audio_checks import assert_speech, pcm16, read_wav
from grpc_checks import assert_serving_and_reflected

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc, ttsfleet_v1_pb2, ttsfleet_v1_pb2_grpc

pytestmark = pytest.mark.voice  # the real Piper voice

TEXT = "The quick brown fox jumps over the lazy dog. Then it runs back home again."
PCM16 = tts_pb2.AUDIO_ENCODING_PCM16


async def test_synthesize_returns_a_wav_of_speech(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    call = stub.Synthesize(tts_pb2.TTSRequest(text=TEXT))
    response = await call
    rate, samples = read_wav(response.audio)
    assert rate == response.sample_rate == 22050
    assert response.voice == "joe"
    assert response.audio_seconds == pytest.approx(samples.size / rate)
    assert_speech(samples, rate, TEXT)
    trailing = dict(await call.trailing_metadata())
    assert trailing["x-ttsfleet-queue-depth"] == "0"


async def test_streamed_chunks_join_to_the_unary_audio(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    request = tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet")
    chunks = [c async for c in stub.StreamSynthesize(request)]
    assert len(chunks) >= 2, "one chunk per sentence at least"
    assert {c.sample_rate for c in chunks} == {22050}
    unary = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet", encoding=PCM16))
    streamed = pcm16(b"".join(c.chunk for c in chunks))
    whole = pcm16(unary.audio)
    assert streamed.size == whole.size
    assert np.max(np.abs(streamed.astype(np.int32) - whole)) <= 1


async def test_stream_sends_the_first_sentence_before_the_rest_exists(
    stub: tts_pb2_grpc.TTSServiceStub,
) -> None:
    text = "Hi. " + "This second sentence is a good deal longer than the first one was. " * 3
    call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=text, voice="joe-quiet"))
    metadata = dict(await call.initial_metadata())
    assert metadata["x-tts-sample-rate"] == "22050"
    chunks = [c async for c in call]
    first, rest = chunks[0], chunks[1:]
    # The first chunk is only the short first sentence: it was sent on its own.
    assert len(first.chunk) < sum(len(c.chunk) for c in rest) / 4


@pytest.mark.parametrize(
    ("request_fields", "code", "message"),
    [
        ({"text": ""}, grpc.StatusCode.INVALID_ARGUMENT, "text is empty"),
        ({"text": " \n\t "}, grpc.StatusCode.INVALID_ARGUMENT, "text is empty"),
        ({"text": "\x00\x01\x02"}, grpc.StatusCode.INVALID_ARGUMENT, "text is empty"),
        ({"text": "a" * 2001}, grpc.StatusCode.INVALID_ARGUMENT, "limit is 2000"),
        ({"text": "hi", "voice": "nobody"}, grpc.StatusCode.NOT_FOUND, "unknown voice 'nobody'"),
        ({"text": "hi", "speed": 9.0}, grpc.StatusCode.INVALID_ARGUMENT, "speed 9.0 is outside"),
        ({"text": "hi", "speed": float("nan")}, grpc.StatusCode.INVALID_ARGUMENT, "speed nan"),
        ({"text": "hi", "sample_rate": 100}, grpc.StatusCode.INVALID_ARGUMENT, "sample_rate 100"),
        ({"text": "hi", "encoding": 99}, grpc.StatusCode.INVALID_ARGUMENT, "unknown encoding"),
        ({"text": "hi", "request_id": "has space"}, grpc.StatusCode.INVALID_ARGUMENT, "request_id"),
        ({"text": "...!?"}, grpc.StatusCode.INVALID_ARGUMENT, "nothing to speak"),
    ],
)
async def test_bad_requests_get_a_clear_status(
    stub: tts_pb2_grpc.TTSServiceStub,
    request_fields: dict[str, object],
    code: grpc.StatusCode,
    message: str,
) -> None:
    for method in (stub.Synthesize, stub.StreamSynthesize):
        call = method(tts_pb2.TTSRequest(**request_fields))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call if method is stub.Synthesize else [c async for c in call]
        assert raised.value.code() == code
        assert message in (raised.value.details() or "")


async def test_resampling_and_speed(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    native = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet"))
    low = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet", sample_rate=16000))
    fast = await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet", speed=2.0))
    rate, low_samples = read_wav(low.audio)
    assert rate == 16000
    assert low.audio_seconds == pytest.approx(native.audio_seconds, abs=0.01)
    assert_speech(low_samples, rate, TEXT)
    # Durations are whole frames with a floor per phoneme, so 2x speed is not exactly half.
    assert 0.4 * native.audio_seconds < fast.audio_seconds < 0.75 * native.audio_seconds


async def test_full_queue_is_refused_at_once(engines: dict[str, object]) -> None:
    from voices import JOE, pod_config, running_server

    config = pod_config(JOE, queueLimit=1, batching={"maxBatchSize": 1, "maxWaitMilliseconds": 0})
    async with (
        running_server(config, {"joe": engines["joe"]}) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        long_text = "This sentence keeps the engine busy for a while. " * 6
        first = asyncio.ensure_future(stub.Synthesize(tts_pb2.TTSRequest(text=long_text)))
        await _until(lambda: server.scheduler.load.in_flight == 1)
        second = asyncio.ensure_future(stub.Synthesize(tts_pb2.TTSRequest(text=long_text)))
        await _until(lambda: server.scheduler.load.queue_depth == 1)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Synthesize(tts_pb2.TTSRequest(text="one more"))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue full" in (raised.value.details() or "")
        assert not first.done(), "the refusal did not wait for queued work"
        assert (await first).audio and (await second).audio


async def test_watch_load_reports_queue_and_in_flight(
    server: InferenceServer, stub: tts_pb2_grpc.TTSServiceStub
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        load = ttsfleet_v1_pb2_grpc.LoadReporterStub(channel)
        watch = load.WatchLoad(ttsfleet_v1_pb2.WatchLoadRequest(min_interval_ms=5))
        first = await watch.read()
        assert (first.queue_depth, first.in_flight, first.queue_capacity) == (0, 0, 16)
        busy = asyncio.ensure_future(stub.Synthesize(tts_pb2.TTSRequest(text=TEXT)))
        seen = [await watch.read() for _ in range(3)]
        assert any(r.in_flight == 1 for r in seen)
        await busy
        watch.cancel()


async def test_health_reflection_voices_and_v1(server: InferenceServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        names = await assert_serving_and_reflected(channel)
        assert {"TTSService", "ttsfleet.v1.Synthesizer", "ttsfleet.v1.LoadReporter"} <= names
        voices = await tts_pb2_grpc.TTSServiceStub(channel).ListVoices(tts_pb2.ListVoicesRequest())
        assert [v.name for v in voices.voices] == ["joe", "joe-quiet"]
        assert voices.default_voice == "joe"
        v1 = ttsfleet_v1_pb2_grpc.SynthesizerStub(channel)
        response = await v1.Synthesize(tts_pb2.TTSRequest(text="Hello.", request_id="abc-1"))
        assert response.request_id == "abc-1"
        assert read_wav(response.audio)[1].size > 0


async def test_metrics_are_exposed(
    server: InferenceServer, stub: tts_pb2_grpc.TTSServiceStub
) -> None:
    await stub.Synthesize(tts_pb2.TTSRequest(text="Hello."))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Synthesize(tts_pb2.TTSRequest(text=""))
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = (await asyncio.to_thread(lambda: urllib.request.urlopen(url).read())).decode()
    assert (
        'ttsfleet_inference_requests_total{code="OK",method="Synthesize",voice="joe"} 1.0' in body
    )
    assert 'code="INVALID_ARGUMENT"' in body
    assert "ttsfleet_inference_queue_capacity 16.0" in body  # the pod config's queueLimit
    for name in (
        "ttsfleet_inference_request_duration_seconds_bucket",
        "ttsfleet_inference_time_to_first_audio_seconds_bucket",
        "ttsfleet_inference_audio_seconds_total",
        "ttsfleet_inference_queue_depth",
        "ttsfleet_inference_in_flight",
    ):
        assert name in body


async def test_draining_finishes_accepted_work_and_refuses_new(
    engines: dict[str, object],
) -> None:
    from voices import JOE, pod_config

    server = InferenceServer(pod_config(JOE), {"joe": engines["joe"]})
    await server.start("127.0.0.1", 0, None)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        accepted = asyncio.ensure_future(stub.Synthesize(tts_pb2.TTSRequest(text=TEXT)))
        await _until(lambda: server.scheduler.load.in_flight == 1)
        watch = ttsfleet_v1_pb2_grpc.LoadReporterStub(channel).WatchLoad(
            ttsfleet_v1_pb2.WatchLoadRequest(min_interval_ms=5)
        )
        stopping = asyncio.ensure_future(server.stop(grace=30))
        await _until(lambda: server.scheduler.load.draining)
        reports = [r async for r in watch]
        assert reports[-1].draining, "the load watch ends by saying the pod drains"

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Synthesize(tts_pb2.TTSRequest(text="too late"))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert read_wav((await accepted).audio)[1].size > 0
        await stopping


async def _until(condition: object, limit: float = 30.0) -> None:
    """Polls a condition, bounded in time."""
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)
