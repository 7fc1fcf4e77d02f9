"""Small checks that audio is real speech, used by tests at every level."""

from __future__ import annotations

import io
import wave

import numpy as np
import numpy.typing as npt

from ttsfleet.inference.engine import Audio, BatchItem, VoiceEngine


def read_wav(data: bytes) -> tuple[int, npt.NDArray[np.int16]]:
    """Parses a mono 16-bit WAV file; fails the test on anything else."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        return wav.getframerate(), np.frombuffer(frames, dtype="<i2")


def pcm16(data: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(data, dtype="<i2")


def assert_speech(samples: npt.NDArray[np.int16], rate: int, text: str) -> None:
    """Audio is speech-like for the text: plausible length, not silence, not clipped noise."""
    seconds = samples.size / rate
    words = len(text.split())
    # Read speech runs at roughly 2-4 words a second; allow a wide margin.
    assert 0.15 * words <= seconds <= 1.2 * words + 1.0, (seconds, words)
    level = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
    assert level > 300, f"RMS {level:.0f}: silence"
    # Speech has pauses: a good share of 20 ms frames is much quieter than the loudest.
    frame = rate // 50
    frames = samples[: samples.size // frame * frame].reshape(-1, frame).astype(np.float64)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    assert np.mean(energy < 0.1 * energy.max()) > 0.03, "no pauses: not speech"


def decode(data: bytes, name: str, rate: int) -> tuple[int, npt.NDArray[np.float32]]:
    """Any of the fleet's encodings (a `Codec.name`) as (rate, mono float samples), by FFmpeg.

    `rate` is the stream's stated rate: headerless formats need it; the
    others carry their own (Opus decodes at 48 kHz, whatever it was fed).
    """
    import av

    if name == "pcm":
        return rate, pcm16(data).astype(np.float32) / 32768
    headerless = name in ("mulaw", "alaw")
    with av.open(
        io.BytesIO(data),
        format=name if headerless else None,
        options={"sample_rate": str(rate)} if headerless else {},
    ) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        samples = [
            converted.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for converted in to_float.resample(frame)
        ]
        decoded_rate = stream.rate
    assert samples, f"no {name} audio"
    return decoded_rate, np.concatenate(samples).astype(np.float32)


def snr_db(ours: npt.NDArray[np.float32], theirs: npt.NDArray[np.float32]) -> float:
    """How far `ours` is from the reference `theirs`: signal over difference, in dB."""
    error = np.sum((ours.astype(np.float64) - theirs) ** 2)
    return float(10 * np.log10(np.sum(theirs.astype(np.float64) ** 2) / max(error, 1e-30)))


def synthesize_whole(engine: VoiceEngine, items: list[BatchItem]) -> list[Audio]:
    """Each item's whole audio from one batch run by the engine alone (no scheduler)."""
    pieces = list(zip(*engine.run_batch(items), strict=True))
    return [np.concatenate(item_pieces) for item_pieces in pieces]
