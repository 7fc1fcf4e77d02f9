"""Where each word of a text is: first in the model's phoneme ids, then in its audio.

The phonemizer speaks a sentence as a whole, so its phonemes do not split
back into the text's words one for one: numbers expand into several words
("42" → "forty two"), short words merge ("out of" → "ˌaʊɾəv"), abbreviations
end sentences. So each word is phonemized alone as well, and the sentence's
phonemes are aligned against the words' phonemes laid end to end (difflib's
matching blocks, which keep order); every phoneme of the sentence takes the
word its match belongs to. A word whose phonemes found no match (a lone
"--") has no time and is left out, whatever the text: this never fails.
Times then come from the model's own durations: the audio samples each
phoneme id lasts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

# Phonemes that are no part of a word's sound: a word's span starts and ends on a sounded one.
_UNSOUNDED = frozenset(" .,;:!?¡¿\"'()-—–…«»“”")  # noqa: RUF001 (typographic on purpose)
# Punctuation taken off a word's ends when it is reported ("Smith," → "Smith").
_EDGE_PUNCTUATION = ".,;:!?¡¿\"'()[]{}«»“”‘’…—–-"  # noqa: RUF001 (typographic on purpose)
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class WordSpan:
    """A word of an utterance and the phoneme ids [first_id, stop_id) that speak it."""

    word: str
    phonemes: str
    first_id: int
    stop_id: int


@dataclass(frozen=True)
class WordTime:
    """A word's audio, in samples from the start of its utterance's audio."""

    word: str
    phonemes: str
    start: int
    end: int


def text_words(text: str) -> list[str]:
    """The words a reader sees: whitespace-separated, their outer punctuation taken off."""
    words = (token.strip(_EDGE_PUNCTUATION) for token in _TOKEN.findall(text))
    return [word for word in words if word]


def owners(alone: Sequence[str], sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    """For each phoneme of each sentence, the index of the word it speaks (-1: none).

    `alone[i]` is word i's phonemes when it is phonemized alone.
    """
    spoken = [phoneme for sentence in sentences for phoneme in sentence]
    expected: list[str] = []
    owner_of: list[int] = []
    for index, word in enumerate(alone):
        phonemes = [ph for ph in word if ph not in _UNSOUNDED]
        expected += [*phonemes, " "]
        owner_of += [index] * len(phonemes) + [-1]
    owner = [-1] * len(spoken)
    matcher = difflib.SequenceMatcher(None, spoken, expected, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            owner[i1:i2] = owner_of[j1:j2]
        elif tag == "replace":  # sounds that differ in context: shared out in order
            for k in range(i2 - i1):
                owner[i1 + k] = owner_of[j1 + k * (j2 - j1) // (i2 - i1)]
    for position, phoneme in enumerate(spoken):
        if phoneme in _UNSOUNDED:
            owner[position] = -1
    bounds = list(accumulate((len(sentence) for sentence in sentences), initial=0))
    return [owner[start:stop] for start, stop in pairwise(bounds)]


def spans(
    words: Sequence[str],
    phonemes: Sequence[str],
    owner: Sequence[int],
    id_starts: Sequence[int | None],
) -> tuple[WordSpan, ...]:
    """The spans of the words that own sounded phonemes in this sentence, in order.

    `id_starts[i]` is the first phoneme id of phoneme i (None: the voice has
    no id for it), and one more entry gives where the end marker starts; a
    phoneme's ids (its own and the pad after it) run to the next one's first.
    """
    found: dict[int, list[int]] = {}
    for position, index in enumerate(owner):
        if index >= 0 and id_starts[position] is not None:
            found.setdefault(index, []).append(position)
    result = []
    # A word starts with the space that joins it to the word before: the model
    # voices the closure of an onset ("package": the hush before the burst of
    # p) in that space. A pause at punctuation stays out of it.
    for index, positions in sorted(found.items()):
        first, last = positions[0], positions[-1]
        if _joined_by_space(phonemes, first) and id_starts[first - 1] is not None:
            first -= 1
        first_id = id_starts[first]
        stop_id = next(start for start in id_starts[last + 1 :] if start is not None)
        assert first_id is not None
        said = "".join(phonemes[first : last + 1]).strip()
        result.append(WordSpan(words[index], said, first_id, stop_id))
    return tuple(result)


def _joined_by_space(phonemes: Sequence[str], position: int) -> bool:
    return (
        position > 1 and phonemes[position - 1] == " " and phonemes[position - 2] not in _UNSOUNDED
    )


def word_times(spans: Sequence[WordSpan], id_samples: Sequence[int]) -> tuple[WordTime, ...]:
    """The spans in samples of the utterance's audio, from the samples each phoneme id lasts."""
    ends = [0, *accumulate(int(samples) for samples in id_samples)]
    last = len(ends) - 1
    return tuple(
        WordTime(
            span.word,
            span.phonemes,
            ends[min(span.first_id, last)],
            ends[min(span.stop_id, last)],
        )
        for span in spans
    )
