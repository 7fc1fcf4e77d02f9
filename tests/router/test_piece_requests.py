"""The router's piece requests: built from the caller's bytes, answered as one response."""

from __future__ import annotations

import grpc
import pytest
from audio_checks import read_wav

from ttsfleet import codecs
from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2
from ttsfleet.router.piece_requests import joined_response, piece_request, piece_template


def test_piece_requests_keep_every_other_field() -> None:
    raw = tts_pb2.TTSRequest(
        text="long text", voice="joe", speed=1.5, request_id="r", sample_rate=16000
    ).SerializeToString()
    piece = tts_pb2.TTSRequest.FromString(piece_request(piece_template(raw), "short"))
    assert (piece.text, piece.voice, piece.speed, piece.request_id) == ("short", "joe", 1.5, "r")
    assert (piece.encoding, piece.sample_rate) == (tts_pb2.AUDIO_ENCODING_PCM16, 16000)
    # Only the piece's text travels: a long original is not re-sent with every piece.
    assert len(piece_request(piece_template(raw), "short")) < len(raw)
    assert (
        tts_pb2.TTSRequest.FromString(piece_request(piece_template(raw), "short", 8000)).sample_rate
        == 8000
    )


def test_pieces_are_asked_for_the_rate_the_codec_needs() -> None:
    mulaw = codecs.CODECS[tts_pb2.AUDIO_ENCODING_MULAW]
    opus = codecs.CODECS[tts_pb2.AUDIO_ENCODING_OGG_OPUS]
    assert (mulaw.source_rate(0), opus.source_rate(0), codecs.WAV.source_rate(0)) == (
        8000,
        24000,
        0,
    )
    with pytest.raises(TTSError) as refused:
        opus.source_rate(22050)
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "OGG_OPUS takes sample rates 8000, 12000, 16000, 24000, 48000 Hz" in str(refused.value)


def test_piece_chunks_join_into_one_wav() -> None:
    chunks = [
        tts_pb2.AudioChunk(chunk=bytes([i]) * 4, sample_rate=8000).SerializeToString()
        for i in range(3)
    ]
    joined = tts_pb2.TTSResponse.FromString(joined_response(chunks, codecs.WAV, "v", "r"))
    assert joined.encoding == tts_pb2.AUDIO_ENCODING_WAV
    rate, samples = read_wav(joined.audio)
    assert rate == 8000 and samples.tobytes() == b"\0" * 4 + b"\1" * 4 + b"\2" * 4
    assert (joined.audio_seconds, joined.voice, joined.request_id) == (12 / 2 / 8000, "v", "r")
