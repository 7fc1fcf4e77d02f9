"""Words against phonemes and durations, as pure functions: no voice, no phonemizer."""

# ruff: noqa: RUF001 (IPA letters look like Latin ones on purpose)

from __future__ import annotations

import itertools

from ttsfleet.inference.words import WordSpan, owners, spans, text_words, word_times

# A phonemizer that knows a few words alone, as espeak says them.
ALONE = {"out": "ˈaʊt", "of": "ʌv", "the": "ðə", "blue": "blˈuː", "42": "fˈɔːɹɾi tˈuː", "--": ""}


def test_words_lose_their_outer_punctuation_only() -> None:
    assert text_words('"Smith," didn\'t -- (it) $42.50!') == ["Smith", "didn't", "it", "$42.50"]


def test_merged_and_expanded_words_each_get_their_own_phonemes() -> None:
    # espeak joins "out of" into one word and expands "42" into two.
    sentence = list("ˌaʊɾəv ðə blˈuː, fˈɔːɹɾi tˈuː.")
    words = ["out", "of", "the", "blue", "42", "--"]
    [owner] = owners([ALONE[word] for word in words], [sentence])
    starts: list[int | None] = [2 + 2 * i for i in range(len(sentence) + 1)]
    found = spans(words, sentence, owner, starts)
    assert [s.word for s in found] == ["out", "of", "the", "blue", "42"], "-- has no sound"
    assert found[4].phonemes == "fˈɔːɹɾi tˈuː"
    assert found[2].phonemes == "ðə", "the space before a word is its time, not its phonemes"
    stops = [s.stop_id for s in found]
    assert stops == sorted(stops) and all(
        a.stop_id <= b.first_id for a, b in itertools.pairwise(found)
    )


def test_a_word_split_over_two_sentences_stays_in_each_sentence_it_owns() -> None:
    first, second = list("dˈɑːktɚ."), list("smˈɪθ")
    owned = owners(["dˈɑːktɚ", "smˈɪθ"], [first, second])
    assert [set(o) - {-1} for o in owned] == [{0}, {1}]


def test_times_add_up_the_samples_of_each_phoneme_id() -> None:
    span = WordSpan("hi", "haɪ", first_id=2, stop_id=6)
    [time] = word_times([span], [100, 50, 10, 20, 30, 40, 60, 70])
    assert (time.start, time.end) == (150, 250)
    # Durations shorter than the ids (never from a real model) clamp instead of failing.
    [short] = word_times([span], [100, 50, 10])
    assert (short.start, short.end) == (150, 160)
