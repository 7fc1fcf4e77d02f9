"""Every encoding from a real pod over real gRPC: decodable, as long as the PCM, streamable.

Decoding is FFmpeg's (PyAV), so "valid" means what a player would accept.
"""

from __future__ import annotations

import grpc
import pytest
from audio_checks import decode
from voices import JOE_QUIET, pod_config, running_server

from ttsfleet import codecs
from ttsfleet.proto import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.voice  # the real Piper voice

TEXT = "The quick brown fox jumps over the lazy dog. Then it runs back home again."
ENCODINGS = sorted(codecs.CODECS.values(), key=lambda codec: codec.encoding)
# Rates the pod states for the joe voice (22,050 Hz) when none is asked for.
RATES = {"mulaw": 8000, "alaw": 8000, "opus": 24000}


async def _pcm_seconds(stub: tts_pb2_grpc.TTSServiceStub) -> float:
    reference = await stub.Synthesize(
        tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet", encoding=tts_pb2.AUDIO_ENCODING_PCM16)
    )
    return float(reference.audio_seconds)


@pytest.mark.parametrize("codec", ENCODINGS, ids=lambda codec: codec.name)
async def test_each_encoding_unary_and_streamed_decodes_to_the_speech(
    stub: tts_pb2_grpc.TTSServiceStub, codec: codecs.Codec
) -> None:
    request = tts_pb2.TTSRequest(text=TEXT, voice="joe-quiet", encoding=codec.encoding)
    seconds = await _pcm_seconds(stub)
    unary = await stub.Synthesize(request)
    rate = RATES.get(codec.name, 22050)
    assert (unary.encoding, unary.sample_rate) == (codec.encoding, rate)
    call = stub.StreamSynthesize(request)
    chunks = [chunk async for chunk in call]
    assert dict(await call.initial_metadata())["x-tts-sample-rate"] == str(rate)
    assert {chunk.sample_rate for chunk in chunks} == {rate}
    assert len(chunks) >= 2, "audio leaves as it is made"
    # A player can start on the first chunk alone...
    first_rate, first = decode(chunks[0].chunk, codec.name, rate)
    assert first.size > 0
    # ...and the chunks joined are one file as long as the PCM.
    for data in (unary.audio, b"".join(chunk.chunk for chunk in chunks)):
        decoded_rate, samples = decode(data, codec.name, rate)
        assert decoded_rate == first_rate
        assert samples.size / decoded_rate == pytest.approx(seconds, rel=0.1)
        assert float(abs(samples).max()) > 0.1, "speech, not silence"


async def test_rates_the_codec_cannot_carry_are_invalid(stub: tts_pb2_grpc.TTSServiceStub) -> None:
    request = tts_pb2.TTSRequest(
        text=TEXT, encoding=tts_pb2.AUDIO_ENCODING_OGG_OPUS, sample_rate=22050
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Synthesize(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "OGG_OPUS takes sample rates" in (raised.value.details() or "")
    telephone = await stub.Synthesize(
        tts_pb2.TTSRequest(text=TEXT, encoding=tts_pb2.AUDIO_ENCODING_MULAW, sample_rate=16000)
    )
    assert telephone.sample_rate == 16000 and len(telephone.audio) == pytest.approx(
        telephone.audio_seconds * 16000, abs=1
    )


async def test_unary_answers_over_the_limit_are_refused_before_any_work(
    quiet_engines: dict[str, object],
) -> None:
    """The pool's maxUnaryResponseBytes, checked against the phonemes' predicted length."""
    config = pod_config(JOE_QUIET, maxUnaryResponseBytes=100_000)
    async with (
        running_server(config, quiet_engines) as pod,
        grpc.aio.insecure_channel(f"127.0.0.1:{pod.port}") as channel,
    ):
        stub = tts_pb2_grpc.TTSServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Synthesize(tts_pb2.TTSRequest(text=TEXT))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        message = raised.value.details() or ""
        assert "over the 0.1 MiB limit for Synthesize" in message
        assert "use StreamSynthesize, or a compressed encoding" in message
        served = pod.metrics.registry.get_sample_value(
            "ttsfleet_inference_audio_seconds_total", {"voice": JOE_QUIET.name}
        )
        assert not served, "refused before it was synthesized"
        compressed = await stub.Synthesize(
            tts_pb2.TTSRequest(text=TEXT, encoding=tts_pb2.AUDIO_ENCODING_OGG_OPUS)
        )
        streamed = [c async for c in stub.StreamSynthesize(tts_pb2.TTSRequest(text=TEXT))]
    assert compressed.audio and streamed
