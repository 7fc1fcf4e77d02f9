"""The voice-engine interface every engine implements.

An engine turns text into utterances (its front end, cheap and done before a
request is queued) and synthesizes them in steps, so that the scheduler can
batch at the granularity of one step rather than one sentence. `prepare`
starts utterances (whatever needs the whole sentence: for VITS the text
encoder, durations and flow); `step` decodes the next piece of any set of
started utterances together, whichever utterance and however far along each
is, so that a newcomer's first piece and other utterances' later pieces can
share a batch. An engine that cannot decode in pieces makes each utterance
one step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ttsfleet.audio import Audio
from ttsfleet.inference.speakers import Speakers
from ttsfleet.inference.words import WordSpan
from ttsfleet.ssml import Segment

EMPTY: Audio = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    engine: str
    language: str
    sample_rate: int
    speakers: Speakers = field(default_factory=Speakers)


@dataclass(frozen=True)
class Utterance:
    """One sentence as model input; with word timings asked for, where its words are.

    SSML sets the rest: seconds of silence before and after it (`<break>`),
    and its rate against the request's speed (`<prosody rate>`).
    """

    phoneme_ids: tuple[int, ...]
    words: tuple[WordSpan, ...] = ()
    pause_before: float = 0.0
    pause_after: float = 0.0
    rate: float = 1.0


@dataclass(frozen=True)
class SynthesisParams:
    """Per-request model settings, already resolved against the voice's defaults."""

    length_scale: float
    noise_scale: float
    noise_w: float
    speaker: int | None = None


BatchItem = tuple[Utterance, SynthesisParams]


def batch_item(utterance: Utterance, params: SynthesisParams) -> BatchItem:
    """The utterance with the request's settings at its own rate."""
    if utterance.rate == 1.0:
        return utterance, params
    return utterance, replace(params, length_scale=params.length_scale / utterance.rate)


class Stream(ABC):
    """One utterance being synthesized: the engine's state between its steps.

    `id_samples`, once the engine knows it (at the latest with the first
    piece), is how many audio samples each phoneme id lasts: the model's own
    durations, which word timings come from.
    """

    id_samples: Sequence[int] | None = None

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once every piece of its audio has been handed out."""


class VoiceEngine(ABC):
    """A loaded voice that synthesizes utterances step by step, many at a time."""

    info: VoiceInfo
    max_batch_size: int = 1

    @abstractmethod
    def utterances(self, text: str | Sequence[Segment], words: bool = False) -> list[Utterance]:
        """Splits text (plain, or read from SSML) into model-ready sentences; may return none
        for unspeakable text.

        With `words`, each utterance says which of its phoneme ids speak which word.
        """

    @abstractmethod
    def default_params(self, speed: float) -> SynthesisParams:
        """Model settings for a speaking rate, from the voice's configured defaults."""

    @abstractmethod
    def estimate_seconds(self, utterance: Utterance, params: SynthesisParams) -> float:
        """Seconds of audio the utterance will likely make: the load report's unit of work."""

    @abstractmethod
    def prepare(self, items: Sequence[BatchItem]) -> list[Stream]:
        """Starts items together (at most `max_batch_size`); one stream per item, in order."""

    @abstractmethod
    def step(self, streams: Sequence[Stream]) -> list[Audio]:
        """The next float32 piece of each stream (none done, at most `max_batch_size`).

        Concatenating a stream's pieces gives the same audio (noise off)
        whatever other streams shared its steps, and the same as running it
        alone.
        """

    def run_batch(self, items: Sequence[BatchItem]) -> Iterator[list[Audio]]:
        """Synthesizes items together, with nothing joining: one list of pieces per step.

        An item whose audio is already complete gets an empty piece. For
        benchmarks and tests that drive an engine without a scheduler.
        """
        streams = self.prepare(items)
        while live := [stream for stream in streams if not stream.done]:
            pieces = dict(zip(map(id, live), self.step(live), strict=True))
            yield [pieces.get(id(stream), EMPTY) for stream in streams]
