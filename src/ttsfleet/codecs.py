"""Audio encodings: PCM16 and WAV as the seed contract has them, the rest by FFmpeg through PyAV.

The pod encodes what it synthesizes, the router what it joins from a long
text's pieces, and the HTTP gateway what it streams: one table of encodings
and one encoder for all. A stream's encoder hands out whole frames (MP3,
AAC, G.711) or whole pages (Ogg) after every piece of audio, so each chunk
leaves on a boundary a decoder can start from, and the chunks joined are
one valid file. Unary requests use the same encoder with larger Ogg pages.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import av
import grpc
import numpy as np
from av.audio.stream import AudioStream

from ttsfleet.audio import streaming_wav_header, wav_file
from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2

Encoding = tts_pb2.AudioEncoding
Tag = TypeVar("Tag")

# Sample rates MPEG audio (MP3, AAC) and Opus can carry.
_MPEG_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# Ogg pages of a stream close every 20 ms of audio (one Opus packet), so the
# audio of each piece leaves with it; a whole file keeps FFmpeg's 1 s pages.
_LIVE_PAGE_MICROSECONDS = 20_000
# The highest native rate of the voices we serve (Piper's are 16,000 or
# 22,050 Hz): what size bounds assume when only the voice knows its rate.
NATIVE_RATE_BOUND = 24_000
# FLAC's header block and a frame's worth of slack over raw PCM, for size bounds.
_FLAC_OVERHEAD_BYTES = 16_384


@dataclass(frozen=True)
class Codec:
    """One encoding: how FFmpeg makes it, at which rates, and what HTTP calls it."""

    encoding: Encoding
    name: str  # the `response_format` and job `format` value
    media_type: str
    # FFmpeg's muxer and encoder; None for the two the seed contract writes itself.
    muxer: str | None = None
    encoder: str | None = None
    bit_rate: int | None = None  # a lossy codec's target, bits per second
    # The rates it takes (None: any) and the rate it uses when none is asked
    # for (0: the voice's own).
    rates: tuple[int, ...] | None = None
    default_rate: int = 0
    muxer_options: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return tts_pb2.AudioEncoding.Name(self.encoding).removeprefix("AUDIO_ENCODING_")

    def rate(self, requested: int, native: int) -> int:
        """The output sample rate for a request (0: none asked) and a voice's native rate."""
        if requested:
            self.check_rate(requested)
            return requested
        rate = self.default_rate or native
        if self.rates is None or rate in self.rates:
            return rate
        return min((r for r in self.rates if r >= rate), default=max(self.rates))

    def source_rate(self, requested: int) -> int:
        """The rate to ask a voice's PCM for before encoding: as `rate`, 0 meaning the voice's own.

        For callers (the router's pieces, the gateway) that encode audio
        the fleet made, without knowing the voice's rate in advance.
        """
        if requested:
            self.check_rate(requested)
        return requested or self.default_rate

    def check_rate(self, requested: int) -> None:
        if self.rates is not None and requested not in self.rates:
            raise TTSError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{self.label} takes sample rates {', '.join(map(str, self.rates))} Hz, "
                f"not {requested}",
                field="sample_rate",
            )

    def max_bytes(self, seconds: float, rate: int) -> float:
        """An upper bound on the size of `seconds` of audio at `rate` in this encoding."""
        if self.bit_rate is not None:  # lossy: the target plus framing, with room to spare
            return seconds * self.bit_rate / 8 * 1.5 + 4096
        sample_bytes = 1 if self.encoder in ("pcm_mulaw", "pcm_alaw") else 2
        return seconds * rate * sample_bytes + _FLAC_OVERHEAD_BYTES


PCM16 = Codec(tts_pb2.AUDIO_ENCODING_PCM16, "pcm", "audio/pcm")
WAV = Codec(tts_pb2.AUDIO_ENCODING_WAV, "wav", "audio/wav")
CODECS = {
    codec.encoding: codec
    for codec in (
        PCM16,
        WAV,
        Codec(
            tts_pb2.AUDIO_ENCODING_MULAW,
            "mulaw",
            "audio/basic",
            muxer="mulaw",
            encoder="pcm_mulaw",
            default_rate=8000,
        ),
        Codec(
            tts_pb2.AUDIO_ENCODING_ALAW,
            "alaw",
            "audio/x-alaw-basic",
            muxer="alaw",
            encoder="pcm_alaw",
            default_rate=8000,
        ),
        Codec(
            tts_pb2.AUDIO_ENCODING_OGG_OPUS,
            "opus",
            "audio/ogg",
            muxer="ogg",
            encoder="libopus",
            bit_rate=32_000,
            rates=_OPUS_RATES,
            default_rate=24_000,
        ),
        Codec(
            tts_pb2.AUDIO_ENCODING_MP3,
            "mp3",
            "audio/mpeg",
            muxer="mp3",
            encoder="libmp3lame",
            bit_rate=48_000,
            rates=_MPEG_RATES,
            # No ID3 tag, and no Xing header (a stream cannot go back to fill it in).
            muxer_options={"id3v2_version": "0", "write_xing": "0"},
        ),
        Codec(tts_pb2.AUDIO_ENCODING_FLAC, "flac", "audio/flac", muxer="flac", encoder="flac"),
        Codec(
            tts_pb2.AUDIO_ENCODING_AAC,
            "aac",
            "audio/aac",
            muxer="adts",
            encoder="aac",
            bit_rate=48_000,
            rates=_MPEG_RATES,
        ),
    )
}
BY_NAME = {codec.name: codec for codec in CODECS.values()}


def codec(encoding: Encoding, streaming: bool) -> Codec:
    """The codec a request asks for; unspecified is WAV for a file and PCM16 for a stream."""
    if not encoding:
        return PCM16 if streaming else WAV
    try:
        return CODECS[encoding]
    except KeyError:
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT, f"unknown encoding {encoding}", field="encoding"
        ) from None


class _Sink:
    """Where FFmpeg writes: collects bytes until they are taken. Not seekable, like a socket."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class Encoder:
    """Encodes one request's PCM16 pieces in order; `finish` returns what the encoder held back.

    `live` makes each piece's audio leave with it (small Ogg pages) and a
    WAV header that says "until the stream ends"; otherwise the output is
    the smallest whole file.
    """

    def __init__(self, codec: Codec, rate: int, live: bool) -> None:
        self.codec = codec
        self.rate = rate
        self._live = live
        self._pcm: list[bytes] = []  # a whole WAV file waits for its size
        self._started = False
        self._sink = _Sink()
        self._container: av.container.OutputContainer | None = None
        if codec.muxer is None or codec.encoder is None:
            return
        options = dict(codec.muxer_options)
        if live and codec.muxer == "ogg":
            options["page_duration"] = str(_LIVE_PAGE_MICROSECONDS)
        self._container = av.open(self._sink, mode="w", format=codec.muxer, options=options)
        stream = cast(
            AudioStream, self._container.add_stream(codec.encoder, rate=rate, layout="mono")
        )
        if codec.bit_rate:
            stream.codec_context.bit_rate = codec.bit_rate
        self._stream = stream

    def encode(self, pcm16: bytes) -> bytes:
        if self._container is None:
            return self._plain(pcm16)
        if not pcm16:
            return b""
        samples = np.frombuffer(pcm16, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.rate
        self._container.mux(self._stream.encode(frame))
        return self._sink.take()

    def finish(self) -> bytes:
        if self._container is None:
            if self.codec is PCM16:
                return b""
            if self._live:
                return b"" if self._started else streaming_wav_header(self.rate)
            return wav_file(b"".join(self._pcm), self.rate)
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.take()

    def _plain(self, pcm16: bytes) -> bytes:
        """PCM16 as it is, or WAV: a streaming header first, or the samples kept for the file."""
        if self.codec is PCM16:
            return pcm16
        if not self._live:
            self._pcm.append(pcm16)
            return b""
        header = b"" if self._started else streaming_wav_header(self.rate)
        self._started = True
        return header + pcm16


async def encode_stream(
    pieces: AsyncGenerator[tuple[bytes, int, Sequence[Tag]], None], codec: Codec
) -> AsyncIterator[tuple[bytes, int, list[Tag]]]:
    """A stream's (PCM16, rate, tags) pieces as (encoded chunk, rate, tags), the tail last.

    Tags (word timings) travel with their audio: a chunk carries the tags of
    every piece that went into the encoder since the previous chunk. A chunk
    is never empty, unless tags are left over at the end. Each piece is at
    the rate of the first: a stream does not change rate. Closing this
    closes `pieces` at once (their producer's clean-up runs).
    """
    encoder: Encoder | None = None
    tags: list[Tag] = []
    async with contextlib.aclosing(pieces):
        async for pcm, rate, new_tags in pieces:
            if encoder is None:
                encoder = Encoder(codec, rate, live=True)
            tags += new_tags
            if data := encoder.encode(pcm):
                yield data, rate, tags
                tags = []
    if encoder is not None and ((tail := encoder.finish()) or tags):
        yield tail, encoder.rate, tags


def encode(pcm16: bytes, rate: int, codec: Codec) -> bytes:
    """A whole file of PCM16 audio in `codec`."""
    encoder = Encoder(codec, rate, live=False)
    return encoder.encode(pcm16) + encoder.finish()


def check_unary_size(codec: Codec, seconds: float, rate: int, limit: int) -> None:
    """Refuses a unary request whose answer could exceed `limit` bytes, before any work is done.

    gRPC clients refuse messages over 4 MiB by default, after the whole text
    was synthesized; a stream or a compressed encoding has no such limit.
    """
    size = codec.max_bytes(seconds, rate)
    if size > limit:
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"about {seconds:.0f} s of {codec.label} audio would make a response of about "
            f"{size / 2**20:.1f} MiB, over the {limit / 2**20:.1f} MiB limit for Synthesize; "
            "use StreamSynthesize, or a compressed encoding (OGG_OPUS, MP3, AAC)",
            field="text",
        )
