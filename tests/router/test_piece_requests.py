"""The router's piece requests: built from the caller's bytes, answered as one response."""

from __future__ import annotations

from ttsfleet.proto import tts_pb2
from ttsfleet.router.piece_requests import joined_response, piece_request


def test_piece_requests_keep_every_other_field() -> None:
    raw = tts_pb2.TTSRequest(
        text="long text", voice="joe", speed=1.5, request_id="r"
    ).SerializeToString()
    piece = tts_pb2.TTSRequest.FromString(piece_request(raw, "short"))
    assert (piece.text, piece.voice, piece.speed, piece.request_id) == ("short", "joe", 1.5, "r")
    assert piece.encoding == tts_pb2.AUDIO_ENCODING_PCM16


def test_piece_responses_join_into_one_wav() -> None:
    parts = [
        tts_pb2.TTSResponse(audio=bytes([i]) * 4, sample_rate=8000, audio_seconds=0.25, voice="v")
        for i in range(3)
    ]
    joined = tts_pb2.TTSResponse.FromString(
        joined_response([p.SerializeToString() for p in parts], tts_pb2.AUDIO_ENCODING_UNSPECIFIED)
    )
    assert joined.encoding == tts_pb2.AUDIO_ENCODING_WAV
    assert joined.audio.startswith(b"RIFF") and joined.audio.endswith(
        b"\0" * 4 + b"\1" * 4 + b"\2" * 4
    )
    assert (joined.audio_seconds, joined.voice, joined.sample_rate) == (0.75, "v", 8000)
