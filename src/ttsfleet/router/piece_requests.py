"""The router's side of fan-out: piece requests built from the caller's bytes, and joined answers.

Scheduling the pieces is `ttsfleet.pieces`; this module only speaks the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from ttsfleet.audio import wav_file
from ttsfleet.proto import tts_pb2

Encoding: TypeAlias = tts_pb2.AudioEncoding
PCM16 = tts_pb2.AUDIO_ENCODING_PCM16


def piece_request(raw: bytes, text: str, encoding: Encoding = PCM16) -> bytes:
    """A request's bytes with its text and encoding replaced by a piece's.

    Appending fields to an encoded message overrides earlier values of the
    same fields, so the rest of the caller's request passes through untouched.
    Pieces are asked for PCM16 so their audio can be joined.
    """
    return raw + tts_pb2.TTSRequest(text=text, encoding=encoding).SerializeToString()


def joined_response(parts: Sequence[bytes], encoding: Encoding) -> bytes:
    """One encoded TTSResponse from the encoded PCM16 responses of a request's pieces, in order.

    `encoding` is what the caller asked for: PCM16, or WAV (also for unspecified).
    """
    responses = [tts_pb2.TTSResponse.FromString(part) for part in parts]
    first = responses[0]
    pcm = b"".join(r.audio for r in responses)
    wanted = PCM16 if encoding == PCM16 else tts_pb2.AUDIO_ENCODING_WAV
    return tts_pb2.TTSResponse(
        audio=pcm if wanted == PCM16 else wav_file(pcm, first.sample_rate),
        sample_rate=first.sample_rate,
        encoding=wanted,
        voice=first.voice,
        request_id=first.request_id,
        audio_seconds=sum(r.audio_seconds for r in responses),
    ).SerializeToString()
