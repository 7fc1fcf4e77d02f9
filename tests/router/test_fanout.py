"""Long texts through the router: split at sentences, spoken on several pods, heard in order."""

from __future__ import annotations

import grpc
import pytest
from audio_checks import assert_speech, pcm16
from timed_fleet import running_router, stub_for, timed_pods
from voices import JOE_QUIET

from ttsfleet.inference.server import InferenceServer
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

PCM16 = tts_pb2.AUDIO_ENCODING_PCM16
STORY = (
    "The quick brown fox jumps over the lazy dog. It was not amused. "
    "Then the dog got up, shook itself, and walked away. The fox stayed where it was! "
    "Would the dog come back? Nobody knew. The sun went down over the quiet farm. "
) * 4


def _served(pod: InferenceServer, method: str = "StreamSynthesize", voice: str = "timed") -> float:
    value = pod.metrics.registry.get_sample_value(
        "ttsfleet_inference_requests_total", {"method": method, "voice": voice, "code": "OK"}
    )
    return value or 0.0


async def test_a_long_text_is_spread_over_pods() -> None:
    text = " ".join(f"Sentence number {i} is short." for i in range(60))
    async with (
        timed_pods([0.002] * 4) as pods,
        running_router(pods, fanout_min_chars=100, fanout_parallel=4) as router,
        stub_for(router) as stub,
    ):
        call = stub.StreamSynthesize(tts_pb2.TTSRequest(text=text))
        chunks = [chunk async for chunk in call]
        headers = dict(await call.initial_metadata())
    assert len(chunks) == len(text.split()), "one chunk per word, none lost or repeated"
    assert headers["x-tts-sample-rate"] == "16000"
    assert sum(1 for pod in pods if _served(pod) > 0) >= 2, "pieces went to several pods"


async def test_short_texts_are_not_split() -> None:
    async with (
        timed_pods([0.0] * 2) as pods,
        running_router(pods, fanout_min_chars=100) as router,
        stub_for(router) as stub,
    ):
        [chunk async for chunk in stub.StreamSynthesize(tts_pb2.TTSRequest(text="one two three"))]
    assert sum(_served(pod) for pod in pods) == 1


async def test_texts_over_the_routers_limit_are_refused() -> None:
    async with (
        timed_pods([0.0]) as pods,
        running_router(pods, max_text_chars=50) as router,
        stub_for(router) as stub,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Synthesize(tts_pb2.TTSRequest(text="word " * 20))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the limit is 50" in (raised.value.details() or "")


@pytest.mark.voice
async def test_fanned_out_speech_is_the_whole_texts_speech(
    two_quiet_pods: list[InferenceServer],
) -> None:
    """Noise off makes the voice deterministic; pieces are whole sentences, so the audio is equal."""
    voice = JOE_QUIET.name
    async with grpc.aio.insecure_channel(f"127.0.0.1:{two_quiet_pods[0].port}") as channel:
        direct = await tts_pb2_grpc.TTSServiceStub(channel).Synthesize(
            tts_pb2.TTSRequest(text=STORY, encoding=PCM16)
        )
    async with (
        running_router(
            two_quiet_pods,
            voices=(voice,),
            default_voice=voice,
            fanout_min_chars=200,
            max_unary_bytes=8 * 2**20,  # the router's bound from characters is generous
        ) as router,
        stub_for(router) as stub,
    ):
        unary = await stub.Synthesize(tts_pb2.TTSRequest(text=STORY, encoding=PCM16))
        streamed = b"".join(
            [c.chunk async for c in stub.StreamSynthesize(tts_pb2.TTSRequest(text=STORY))]
        )
        wav = await stub.Synthesize(tts_pb2.TTSRequest(text=STORY))
    assert _served(two_quiet_pods[1], voice=voice) >= 1, "the router split the text over both pods"
    assert unary.audio == direct.audio == streamed
    assert unary.audio_seconds == pytest.approx(direct.audio_seconds)
    assert wav.audio[:4] == b"RIFF" and wav.audio.endswith(direct.audio)
    assert_speech(pcm16(unary.audio), unary.sample_rate, STORY)
