"""The voice-engine interface every engine implements.

An engine turns text into utterances (its front end, cheap and done before a
request is queued) and runs batches of utterances through its model (the
expensive part, done by the scheduler's worker). Running a batch yields audio
in steps so an engine that decodes in windows can hand out the first audio
before the rest of the utterance exists; an engine that cannot simply yields
once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ttsfleet.audio import Audio


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    engine: str
    language: str
    sample_rate: int


@dataclass(frozen=True)
class Utterance:
    """One sentence as model input."""

    phoneme_ids: tuple[int, ...]


@dataclass(frozen=True)
class SynthesisParams:
    """Per-request model settings, already resolved against the voice's defaults."""

    length_scale: float
    noise_scale: float
    noise_w: float
    speaker: int | None = None


BatchItem = tuple[Utterance, SynthesisParams]


class VoiceEngine(ABC):
    """A loaded voice that can synthesize batches of utterances."""

    info: VoiceInfo
    max_batch_size: int = 1

    @abstractmethod
    def utterances(self, text: str) -> list[Utterance]:
        """Splits text into model-ready sentences; may return none for unspeakable text."""

    @abstractmethod
    def default_params(self, speed: float) -> SynthesisParams:
        """Model settings for a speaking rate, from the voice's configured defaults."""

    @abstractmethod
    def run_batch(self, items: Sequence[BatchItem]) -> Iterator[list[Audio]]:
        """Synthesizes items together.

        Each step yields one float32 piece per item, in order (an item whose
        audio is already complete gets an empty piece); when the iterator ends
        every item's audio is complete. Concatenating an item's pieces gives
        the same audio as running it alone.
        """
