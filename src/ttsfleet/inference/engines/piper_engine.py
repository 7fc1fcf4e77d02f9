"""The base of the Piper engines: Piper's text front end (text → sentences → phoneme ids).

Both the ONNX and the torch engine run Piper voices, so they must turn text
into exactly the same phoneme ids, voice description and speed handling;
`PiperEngine` is the one place that does it.
"""

from __future__ import annotations

import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Self

from piper.config import PiperConfig
from piper.const import BOS, EOS, PAD
from piper.voice import PiperVoice

from ttsfleet import ssml
from ttsfleet.inference.engine import SynthesisParams, Utterance, VoiceEngine, VoiceInfo
from ttsfleet.inference.speakers import Speakers
from ttsfleet.inference.words import owners, spans, text_words
from ttsfleet.manifests import PodConfig, Voice
from ttsfleet.ssml import Part, Segment

# Seconds of audio per phoneme id at length_scale 1: the joe voice made 0.023 to
# 0.050 over 20 varied sentences, 0.026 over all of them (ids count Piper's pads).
SECONDS_PER_PHONEME_ID = 0.026


class PiperFrontEnd:
    """Phonemizes text with the voice's espeak settings and applies its defaults."""

    def __init__(self, voice: Voice, config_path: Path) -> None:
        with config_path.open(encoding="utf-8") as stream:
            self.config = PiperConfig.from_dict(json.load(stream))
        # PiperVoice owns the phonemizer logic for every phoneme type; it needs
        # no model session for that, so none is loaded here.
        self._phonemizer = PiperVoice(session=None, config=self.config)
        self._defaults = voice.defaults
        self.speakers = Speakers.of(
            voice.name,
            self.config.num_speakers,
            self.config.speaker_id_map,
            self.config.default_speaker_id
            if voice.defaults.speaker is None
            else voice.defaults.speaker,
        )
        # Word timings phonemize each word alone too; texts repeat their words.
        self._word_phonemes = functools.lru_cache(maxsize=8192)(self._phonemize_word)
        self._lexicon = {word.casefold(): phonemes for word, phonemes in voice.lexicon}
        self._lexicon_words = (
            re.compile(
                r"(?<![\w'-])(?:"
                + "|".join(map(re.escape, sorted(self._lexicon, key=len, reverse=True)))
                + r")(?![\w'-])",
                re.IGNORECASE,
            )
            if self._lexicon
            else None
        )

    def utterances(self, text: str | Sequence[Segment], words: bool = False) -> list[Utterance]:
        """Each segment's sentences, at the segment's rate, its pause before the first.

        A pause with nothing spoken after it goes after the last sentence.
        """
        made: list[Utterance] = []
        pause = 0.0
        for segment in ssml.plain(text) if isinstance(text, str) else text:
            pause += segment.pause
            spoken = self._sentences(segment.parts, words)
            if spoken:
                spoken[0] = replace(spoken[0], pause_before=pause)
                made += [replace(u, rate=segment.rate) for u in spoken]
                pause = 0.0
        if made and pause:
            made[-1] = replace(made[-1], pause_after=pause)
        return made

    def _sentences(self, parts: Sequence[Part], words: bool) -> list[Utterance]:
        """Phonemizes parts (a voice's lexicon words and given phonemes as Piper's raw blocks)."""
        parts = [piece for part in parts for piece in self._lexicon_parts(part)]
        text = "".join(f" [[ {p.phonemes} ]] " if p.phonemes else p.text for p in parts)
        sentences = [phonemes for phonemes in self._phonemizer.phonemize(text) if phonemes]
        if not words:
            return [Utterance(tuple(self._phonemizer.phonemes_to_ids(s))) for s in sentences]
        said: list[str] = []
        alone: list[str] = []
        for part in parts:
            found = [part.text.strip()] if part.phonemes else text_words(part.text)
            said += found
            alone += [part.phonemes] if part.phonemes else map(self._word_phonemes, found)
        owned = owners(alone, sentences)
        return [
            self._utterance_with_words(phonemes, said, owner)
            for phonemes, owner in zip(sentences, owned, strict=True)
        ]

    def _lexicon_parts(self, part: Part) -> list[Part]:
        """A part of text cut at the voice's lexicon words, each of those with its phonemes."""
        if part.phonemes or self._lexicon_words is None:
            return [part]
        found: list[Part] = []
        at = 0
        for match in self._lexicon_words.finditer(part.text):
            found += [Part(part.text[at : match.start()])] if match.start() > at else []
            found.append(Part(match[0], self._lexicon[match[0].casefold()]))
            at = match.end()
        return [*found, Part(part.text[at:])] if at < len(part.text) else found

    def _utterance_with_words(
        self, phonemes: list[str], said: list[str], owner: list[int]
    ) -> Utterance:
        ids = tuple(self._phonemizer.phonemes_to_ids(phonemes))
        starts = self._id_starts(phonemes, len(ids))
        return Utterance(ids, spans(said, phonemes, owner, starts) if starts else ())

    def _id_starts(self, phonemes: list[str], id_count: int) -> list[int | None] | None:
        """Where each phoneme's ids start in Piper's layout (BOS PAD, each phoneme and a PAD,
        EOS), then where EOS starts; None when the ids are laid out otherwise."""
        table = self.config.phoneme_id_map
        pad = len(table.get(PAD, ()))
        at = len(table.get(BOS, ())) + pad
        starts: list[int | None] = []
        for phoneme in phonemes:
            if phoneme in table:
                starts.append(at)
                at += len(table[phoneme]) + pad
            else:
                starts.append(None)
        starts.append(at)
        return starts if at + len(table.get(EOS, ())) == id_count else None

    def _phonemize_word(self, word: str) -> str:
        return "".join(ph for sentence in self._phonemizer.phonemize(word) for ph in sentence)

    def default_params(self, speed: float) -> SynthesisParams:
        rate = speed * self._defaults.speed
        return SynthesisParams(
            length_scale=self.config.length_scale / rate,
            noise_scale=_or(self._defaults.noise_scale, self.config.noise_scale),
            noise_w=_or(self._defaults.noise_w, self.config.noise_w_scale),
            speaker=self.speakers.default,
        )


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


class PiperEngine(VoiceEngine, ABC):
    """What every engine of Piper voices shares: the front end and the voice's description."""

    def __init__(self, voice: Voice, engine: str, config_path: Path) -> None:
        self._front = PiperFrontEnd(voice, config_path)
        self.info = VoiceInfo(
            name=voice.name,
            engine=engine,
            language=voice.language or self._front.config.espeak_voice,
            sample_rate=self._front.config.sample_rate,
            speakers=self._front.speakers,
        )

    @classmethod
    @abstractmethod
    def for_pod(cls, voice: Voice, pod: PodConfig) -> Self:
        """The engine as the pod's configuration sets it up."""

    def utterances(self, text: str | Sequence[Segment], words: bool = False) -> list[Utterance]:
        return self._front.utterances(text, words)

    def default_params(self, speed: float) -> SynthesisParams:
        return self._front.default_params(speed)

    def estimate_seconds(self, utterance: Utterance, params: SynthesisParams) -> float:
        speech = len(utterance.phoneme_ids) * SECONDS_PER_PHONEME_ID * params.length_scale
        return speech / utterance.rate + utterance.pause_before + utterance.pause_after
