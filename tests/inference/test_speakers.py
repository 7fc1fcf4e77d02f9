"""Which speaker a request names: pure logic over a voice's speaker table."""

from __future__ import annotations

import grpc
import pytest

from ttsfleet.errors import TTSError
from ttsfleet.inference.speakers import Speaker, Speakers
from ttsfleet.manifests import ManifestError

TRIO = Speakers.of("trio", 3, {"ada": 0, "cy": 2}, None)


def test_ids_without_a_name_are_named_by_their_id() -> None:
    assert TRIO.table == (Speaker("ada", 0), Speaker("1", 1), Speaker("cy", 2))
    assert TRIO.default == 0


@pytest.mark.parametrize(("requested", "expected"), [("", 0), ("cy", 2), ("2", 2), ("1", 1)])
def test_a_speaker_is_named_or_numbered(requested: str, expected: int) -> None:
    assert TRIO.resolve("trio", requested) == expected


def test_the_default_speaker_is_configurable_and_checked() -> None:
    assert Speakers.of("trio", 3, {}, 2).resolve("trio", "") == 2
    with pytest.raises(ManifestError, match=r"defaults.speaker 3 .* 0-2"):
        Speakers.of("trio", 3, {}, 3)
    with pytest.raises(ManifestError, match="single speaker"):
        Speakers.of("joe", 1, {}, 1)


def test_a_single_speaker_voice_takes_no_speaker() -> None:
    joe = Speakers.of("joe", 1, {}, 0)
    assert joe.table == () and joe.resolve("joe", "") is None
    with pytest.raises(TTSError) as raised:
        joe.resolve("joe", "0")
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "'joe' has a single speaker" in raised.value.message


def test_a_long_speaker_list_is_cut_in_the_message() -> None:
    many = Speakers.of("crowd", 40, {}, None)
    with pytest.raises(TTSError) as raised:
        many.resolve("crowd", "40")
    assert raised.value.message.endswith("9 (9) and 30 more (ListVoices lists them)")
