"""The SSML subset the fleet speaks, read into segments a voice's front end can phonemize.

`<speak>` (the root), `<break time="500ms"|strength="...">` (silence),
`<say-as interpret-as="characters|digits">` (spelt out), `<phoneme
alphabet="ipa" ph="...">` (given phonemes), `<prosody rate="...">`, `<sub
alias="...">`, and `<p>`/`<s>` as plain containers. Anything else is
refused with INVALID_ARGUMENT naming the element, its line and column, as
is malformed XML; documents with a DTD are refused outright, so neither
entity expansion (billion laughs) nor external entities can happen
(defusedxml).

The result is a list of segments: stretches of text spoken at one rate,
each after a pause, made of parts whose phonemes are either the
phonemizer's or given (a `<phoneme>` or a lexicon word).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2
from ttsfleet.text import MAX_SPEED, MIN_SPEED

# The longest <break> honoured: a pause is not a way to make unbounded audio.
MAX_BREAK_SECONDS = 10.0
BREAK_STRENGTHS = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.25,
    "medium": 0.5,
    "strong": 0.75,
    "x-strong": 1.25,
}
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "fast": 1.3, "x-fast": 1.75, "default": 1.0}
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")
_POSITION = re.compile(r": line \d+, column \d+$")
_PERCENT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Part:
    """Text as written; `phonemes` when they are given rather than the phonemizer's."""

    text: str
    phonemes: str = ""


@dataclass(frozen=True)
class Segment:
    """Parts spoken at one rate (1.0: the request's), after `pause` seconds of silence."""

    parts: tuple[Part, ...] = ()
    rate: float = 1.0
    pause: float = 0.0


def is_ssml(text: str, text_format: tts_pb2.TextFormat) -> bool:
    """Whether a request's text is SSML: asked for, or unspecified and starting with <speak."""
    if text_format == tts_pb2.TEXT_FORMAT_UNSPECIFIED:
        return text.lstrip().startswith("<speak")
    return bool(text_format == tts_pb2.TEXT_FORMAT_SSML)


def plain(text: str) -> list[Segment]:
    return [Segment((Part(text),))]


def spoken_text(segments: Sequence[Segment]) -> str:
    """The words of segments as one plain text (markup and pauses gone)."""
    return " ".join(part.text.strip() for segment in segments for part in segment.parts).strip()


def parse(text: str) -> list[Segment]:
    """The document's segments; TTSError (INVALID_ARGUMENT, field text) when it is not ours."""
    builder = _PositionedBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    builder.expat = parser.parser
    try:
        parser.feed(text)
        root = parser.close()
    except ElementTree.ParseError as error:
        line, column = error.position
        reason = _POSITION.sub("", str(error))
        raise _invalid(f"malformed SSML at line {line}, column {column + 1}: {reason}") from None
    except DefusedXmlException as error:
        raise _invalid(f"SSML may not declare a DTD or entities ({type(error).__name__})") from None
    if _name(root) != "speak":
        raise _invalid(f"SSML must have <speak> as its root, not <{_name(root)}>")
    reader = _Reader(builder.positions)
    reader.children(root, rate=1.0)
    return [
        segment
        for segment in reader.segments
        if segment.pause or any(part.text.strip() for part in segment.parts)
    ]


class _PositionedBuilder(ElementTree.TreeBuilder):
    """Remembers where each element starts, for error messages."""

    def __init__(self) -> None:
        super().__init__()
        self.expat: Any = None
        self.positions: dict[int, tuple[int, int]] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> ElementTree.Element:
        element = super().start(tag, attrs)
        self.positions[id(element)] = (
            self.expat.CurrentLineNumber,
            self.expat.CurrentColumnNumber + 1,
        )
        return element


@dataclass
class _Reader:
    """Walks the tree in document order, cutting segments at pauses and rate changes."""

    positions: dict[int, tuple[int, int]]
    segments: list[Segment] = field(default_factory=lambda: [Segment()])

    def children(self, element: ElementTree.Element, rate: float) -> None:
        self.text(element.text, rate)
        for child in element:
            self.element(child, rate)
            self.text(child.tail, rate)

    def element(self, element: ElementTree.Element, rate: float) -> None:
        name = _name(element)
        handler = _HANDLERS.get(name)
        if handler is None:
            raise self.error(
                element, f"<{name}> is not supported; see docs/audio.md for the subset"
            )
        handler(self, element, rate)

    def text(self, text: str | None, rate: float) -> None:
        if text:  # spaces too: they keep the words around markup apart
            self.add(Part(text), rate)

    def add(self, part: Part, rate: float) -> None:
        last = self.segments[-1]
        if last.parts and not math.isclose(last.rate, rate):
            self.segments.append(Segment(rate=rate))
            last = self.segments[-1]
        self.segments[-1] = replace(last, parts=(*last.parts, part), rate=rate)

    def pause(self, seconds: float) -> None:
        last = self.segments[-1]
        if last.parts:
            self.segments.append(Segment(pause=seconds))
        else:
            self.segments[-1] = replace(last, pause=min(last.pause + seconds, MAX_BREAK_SECONDS))

    def error(self, element: ElementTree.Element, message: str) -> TTSError:
        line, column = self.positions.get(id(element), (0, 0))
        return _invalid(f"SSML line {line}, column {column}: {message}")

    def attribute(self, element: ElementTree.Element, name: str, allowed: set[str]) -> str:
        for key in element.attrib:
            if _name_of(key) not in allowed:
                raise self.error(element, f"<{_name(element)}> has no attribute {key!r}")
        return element.attrib.get(name, "")


def _break(reader: _Reader, element: ElementTree.Element, rate: float) -> None:
    time = reader.attribute(element, "time", {"time", "strength"})
    strength = element.attrib.get("strength", "")
    if len(element) or (element.text or "").strip():
        raise reader.error(element, "<break> is empty")
    if time:
        found = _TIME.match(time)
        if not found:
            raise reader.error(element, f"break time {time!r} is not like 500ms or 1.5s")
        seconds = float(found[1]) / (1000 if found[2] == "ms" else 1)
        if seconds > MAX_BREAK_SECONDS:
            raise reader.error(element, f"break time {time} is over {MAX_BREAK_SECONDS:g} s")
    elif strength:
        if strength not in BREAK_STRENGTHS:
            raise reader.error(
                element, f"break strength {strength!r} is not one of {', '.join(BREAK_STRENGTHS)}"
            )
        seconds = BREAK_STRENGTHS[strength]
    else:
        seconds = BREAK_STRENGTHS["medium"]
    reader.pause(seconds)


def _say_as(reader: _Reader, element: ElementTree.Element, rate: float) -> None:
    kind = reader.attribute(element, "interpret-as", {"interpret-as", "format", "detail"})
    text = _only_text(reader, element)
    # Hyphens, not spaces, between letters: espeak reads a lone "a" as the article.
    if kind == "characters":
        spelt = "-".join(ch for ch in text if ch.isalnum())
    elif kind == "digits":
        spelt = " ".join(ch for ch in text if ch.isdigit())
    else:
        raise reader.error(element, f"say-as interpret-as {kind!r}: use characters or digits")
    if spelt:
        reader.add(Part(f" {spelt} "), rate)


def _phoneme(reader: _Reader, element: ElementTree.Element, rate: float) -> None:
    phonemes = reader.attribute(element, "ph", {"ph", "alphabet"}).strip()
    alphabet = element.attrib.get("alphabet", "ipa")
    if alphabet != "ipa":
        raise reader.error(element, f"phoneme alphabet {alphabet!r} is not supported; use ipa")
    if not phonemes or "[[" in phonemes or "]]" in phonemes:
        raise reader.error(element, "<phoneme> needs ph, the word's IPA phonemes")
    reader.add(Part(_only_text(reader, element) or phonemes, phonemes), rate)


def _prosody(reader: _Reader, element: ElementTree.Element, rate: float) -> None:
    value = reader.attribute(element, "rate", {"rate"})
    reader.children(element, rate * _rate(reader, element, value) if value else rate)


def _sub(reader: _Reader, element: ElementTree.Element, rate: float) -> None:
    alias = reader.attribute(element, "alias", {"alias"})
    _only_text(reader, element)
    if alias.strip():
        reader.add(Part(f" {alias.strip()} "), rate)


def _container(reader: _Reader, element: ElementTree.Element, rate: float) -> None:
    reader.attribute(element, "", set())
    reader.children(element, rate)


_HANDLERS = {
    "break": _break,
    "say-as": _say_as,
    "phoneme": _phoneme,
    "prosody": _prosody,
    "sub": _sub,
    "p": _container,
    "s": _container,
}


def _rate(reader: _Reader, element: ElementTree.Element, value: str) -> float:
    if value in RATES:
        return RATES[value]
    percent = _PERCENT.match(value)
    try:
        factor = (
            (float(percent[1]) + (100 if percent[1][0] in "+-" else 0)) / 100
            if percent
            else float(value)
        )
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and MIN_SPEED <= factor <= MAX_SPEED):
        raise reader.error(
            element,
            f"prosody rate {value!r}: use x-slow..x-fast, a percentage or a factor "
            f"within {MIN_SPEED}-{MAX_SPEED}",
        )
    return factor


def _only_text(reader: _Reader, element: ElementTree.Element) -> str:
    if len(element):
        raise reader.error(element, f"<{_name(element)}> holds text only")
    return (element.text or "").strip()


def _name(element: ElementTree.Element) -> str:
    return _name_of(element.tag)


def _name_of(tag: str) -> str:
    """A tag or attribute without its namespace (SSML's own, or none)."""
    return tag.rsplit("}", 1)[-1]


def _invalid(message: str) -> TTSError:
    return TTSError(grpc.StatusCode.INVALID_ARGUMENT, message, field="text")
