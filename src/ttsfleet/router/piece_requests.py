"""The router's side of fan-out: piece requests built from the caller's request, and joined answers.

Pieces are always streamed as PCM16, whatever the caller asked for, so that
their audio can be joined and encoded once (a stream of Ogg or FLAC pieces
would be several files), and so that no piece meets a unary size limit.
Scheduling the pieces is `ttsfleet.pieces`; this module only speaks the wire.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from ttsfleet import codecs
from ttsfleet.proto import tts_pb2
from ttsfleet.word_offsets import PieceClock


def piece_template(raw: bytes) -> tts_pb2.TTSRequest:
    """The caller's request without its text, parsed once for all of its pieces."""
    template = tts_pb2.TTSRequest.FromString(raw)
    template.text = ""
    return template


def piece_request(template: tts_pb2.TTSRequest, text: str, sample_rate: int = 0) -> bytes:
    """One piece's request: the caller's fields with the piece's text, asking for PCM16.

    Built from the parsed fields, so a piece carries its own text only, never
    the whole original (a zero sample rate keeps the caller's).
    """
    piece = tts_pb2.TTSRequest()
    piece.CopyFrom(template)
    piece.text = text
    piece.encoding = tts_pb2.AUDIO_ENCODING_PCM16
    if sample_rate:
        piece.sample_rate = sample_rate
    return piece.SerializeToString()


def joined_response(
    chunks: Sequence[bytes], codec: codecs.Codec, voice: str, request_id: str
) -> bytes:
    """One encoded TTSResponse from the encoded PCM16 chunks of a request's pieces, in order."""
    parsed = [tts_pb2.AudioChunk.FromString(chunk) for chunk in chunks]
    rate = parsed[0].sample_rate if parsed else 0
    pcm = b"".join(chunk.chunk for chunk in parsed)
    words = [word for chunk in parsed for word in chunk.words]
    return tts_pb2.TTSResponse(
        audio=codecs.encode(pcm, rate, codec),
        sample_rate=rate,
        encoding=codec.encoding,
        voice=voice,
        request_id=request_id,
        audio_seconds=len(pcm) / 2 / rate if rate else 0.0,
        words=words,
    ).SerializeToString()


async def encoded_chunks(chunks: AsyncIterator[bytes], codec: codecs.Codec) -> AsyncIterator[bytes]:
    """Encoded PCM16 chunks of a stream re-encoded in `codec`; PCM16 passes through untouched."""
    if codec is codecs.PCM16:
        async for chunk in chunks:
            yield chunk
        return

    async def pcm() -> AsyncGenerator[tuple[bytes, int, Sequence[tts_pb2.WordTiming]], None]:
        async for raw in chunks:
            chunk = tts_pb2.AudioChunk.FromString(raw)
            yield chunk.chunk, chunk.sample_rate, chunk.words

    async for data, rate, words in codecs.encode_stream(pcm(), codec):
        yield tts_pb2.AudioChunk(chunk=data, sample_rate=rate, words=words).SerializeToString()


async def retimed(chunks: AsyncIterator[tuple[int, bytes]], timed: bool) -> AsyncIterator[bytes]:
    """The PCM16 chunks of numbered pieces, in order, their word times made the request's.

    Untimed chunks pass as they are, unparsed.
    """
    clock = PieceClock()
    async for index, raw in chunks:
        if not timed:
            yield raw
            continue
        chunk = tts_pb2.AudioChunk.FromString(raw)
        yield chunk.SerializeToString() if clock.place(index, chunk) else raw
