"""The SSML reader: the subset's segments, clear refusals with positions, hostile documents."""

# ruff: noqa: RUF001 (IPA letters look like Latin ones on purpose)

from __future__ import annotations

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttsfleet import ssml
from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2
from ttsfleet.ssml import Part, Segment


def test_the_subset_becomes_segments_cut_at_pauses_and_rates() -> None:
    segments = ssml.parse(
        '<speak xmlns="http://www.w3.org/2001/10/synthesis">Hi <break time="1.5s"/>'
        '<say-as interpret-as="characters">AB</say-as> <say-as interpret-as="digits">4 2</say-as>'
        '<phoneme alphabet="ipa" ph="təmˈɑːtoʊ">tomato</phoneme>'
        '<prosody rate="80%"><s>slow <prosody rate="x-fast">fast</prosody></s></prosody>'
        '<sub alias="World Wide Web">WWW</sub><break strength="strong"/></speak>'
    )
    assert segments == [
        Segment((Part("Hi "),)),
        Segment((Part(" A-B "), Part(" "), Part(" 4 2 "), Part("tomato", "təmˈɑːtoʊ")), pause=1.5),
        Segment((Part("slow "),), rate=0.8),
        Segment((Part("fast"),), rate=0.8 * 1.75),
        Segment((Part(" World Wide Web "),)),
        Segment(pause=0.75),
    ]


def test_ssml_is_recognised_by_format_or_by_its_root() -> None:
    assert ssml.is_ssml("  <speak>hi</speak>", tts_pb2.TEXT_FORMAT_UNSPECIFIED)
    assert not ssml.is_ssml("<speak>hi</speak>", tts_pb2.TEXT_FORMAT_PLAIN)
    assert ssml.is_ssml("hi", tts_pb2.TEXT_FORMAT_SSML)
    assert not ssml.is_ssml("I <3 you", tts_pb2.TEXT_FORMAT_UNSPECIFIED)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<speak>\n  one <b>two</speak>", "malformed SSML at line 2, column 15: mismatched tag"),
        ("<speak>hi\n <audio src='x'/></speak>", "SSML line 2, column 2: <audio> is not supported"),
        ("<voice>hi</voice>", "<speak> as its root, not <voice>"),
        ('<speak><break time="11s"/></speak>', "break time 11s is over 10 s"),
        ('<speak><break strength="huge"/></speak>', "break strength 'huge' is not one of"),
        ('<speak><say-as interpret-as="date">1/2</say-as></speak>', "use characters or digits"),
        ('<speak><phoneme alphabet="x-sampa" ph="a">a</phoneme></speak>', "use ipa"),
        ('<speak><prosody pitch="high">a</prosody></speak>', "has no attribute 'pitch'"),
        ('<speak><prosody rate="5">a</prosody></speak>', "prosody rate '5'"),
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            '"&lol;&lol;&lol;&lol;">]><speak>&lol2;</speak>',
            "may not declare a DTD",
        ),
        (
            '<!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><speak>&xxe;</speak>',
            "may not declare a DTD",
        ),
        ("<speak>&undefined;</speak>", "undefined entity"),
    ],
)
def test_bad_documents_are_invalid_argument_naming_where(document: str, message: str) -> None:
    with pytest.raises(TTSError) as refused:
        ssml.parse(document)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.field == "text"
    assert message in refused.value.message


markup = st.sampled_from(
    [
        "<break/>",
        '<break time="20ms"/>',
        "<say-as interpret-as='characters'>",
        "</say-as>",
        '<prosody rate="slow">',
        "</prosody>",
        '<phoneme ph="a">',
        "</phoneme>",
        "<s>",
        "</s>",
        "&amp;",
        "&lt;",
        "<![CDATA[x]]>",
        "<!-- c -->",
        "<?pi x?>",
        "<",
        ">",
        "&",
        "\x00",
        "]]",
    ]
)


@settings(max_examples=400, deadline=None)
@given(body=st.lists(st.one_of(markup, st.text(max_size=12)), max_size=30).map("".join))
def test_any_document_parses_or_is_refused_clearly(body: str) -> None:
    try:
        segments = ssml.parse(f"<speak>{body}</speak>")
    except TTSError as error:
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.message
        return
    for segment in segments:
        assert 0 <= segment.pause <= ssml.MAX_BREAK_SECONDS
        assert 0.25 <= segment.rate <= 4.0 or not segment.parts
