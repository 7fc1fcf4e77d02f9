"""Word times on the response's clock: each utterance's words, offset by the audio before it.

The scheduler hands an utterance's word times (in samples of that
utterance) before its audio; the pod's answer counts seconds from the start
of the whole response, and hands each word out with the piece of audio its
start falls in.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttsfleet.inference.words import WordTime
from ttsfleet.proto import tts_pb2


class WordClock:
    """Counts the native-rate samples handed out; holds words until their audio goes."""

    def __init__(self, sample_rate: int, phonemes: bool) -> None:
        self._rate = sample_rate
        self._phonemes = phonemes
        self._samples = 0
        self._waiting: list[tuple[int, tts_pb2.WordTiming]] = []

    def utterance(self, times: Sequence[WordTime]) -> None:
        """An utterance's words; its audio starts after every piece handed out so far."""
        for time in times:
            start = self._samples + time.start
            self._waiting.append(
                (
                    start,
                    tts_pb2.WordTiming(
                        word=time.word,
                        start=start / self._rate,
                        end=(self._samples + time.end) / self._rate,
                        phonemes=time.phonemes if self._phonemes else "",
                    ),
                )
            )

    def audio(self, samples: int) -> list[tts_pb2.WordTiming]:
        """The words whose audio starts in the next `samples` samples (or before)."""
        self._samples += samples
        count = next(
            (i for i, (start, _) in enumerate(self._waiting) if start >= self._samples),
            len(self._waiting),
        )
        due = [timing for _, timing in self._waiting[:count]]
        del self._waiting[:count]
        return due
