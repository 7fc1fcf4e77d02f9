"""Text as every component sees it: the request limits, cleaning, and sentence splitting.

Limits are checked by the pod, the router, the job API and the HTTP gateway
alike, so they are stated once here. Splitting at sentences is how the
router and the job worker cut long texts into pieces (see `pieces`).
"""

from __future__ import annotations

import re
import unicodedata

MIN_SPEED, MAX_SPEED = 0.25, 4.0
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
# Seconds of speech per character, generously: the joe voice speaks prose at
# 0.05-0.06 and number-heavy text at up to 0.105 (numbers are spelt out).
SECONDS_PER_CHARACTER_BOUND = 0.08
# And typically: prose, where a request's length matters for picking its pod.
SECONDS_PER_CHARACTER = 0.055


def speech_seconds_bound(text: str, speed: float) -> float:
    """About the most speech a text makes, known before phonemizing it (for size limits)."""
    return len(text) * SECONDS_PER_CHARACTER_BOUND / speed


def speech_seconds_estimate(text: str, speed: float) -> float:
    """About how much speech a text makes, known before phonemizing it (for picking a pod)."""
    return len(text) * SECONDS_PER_CHARACTER / speed


def clean_text(text: str) -> str:
    """Replaces control and format characters with spaces: the phonemizer reads C strings."""
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in text
    ).strip()


# A sentence: up to terminal punctuation (with closing quotes or brackets)
# followed by whitespace, a blank line, or the end of the text.
_SENTENCE = re.compile(
    r"\S.*?(?:[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019\u00bb)\]]*(?=\s|$)|(?=\n[ \t]*\n)|$)",
    re.DOTALL,
)
_BREAK = re.compile(r"[,;:]\s|\s")
# A "sentence" ending in one of these continues in the next: "Mr. Smith".
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|No|e\.g|i\.e)\.$")


def sentences(text: str) -> list[str]:
    """The text's sentences, whitespace at their ends stripped."""
    found: list[str] = []
    carried = ""
    for match in _SENTENCE.finditer(text):
        sentence = f"{carried} {match.group().strip()}".strip()
        carried = sentence if _ABBREVIATION.search(sentence) else ""
        if sentence and not carried:
            found.append(sentence)
    return [*found, carried] if carried else found


def _cut(sentence: str, piece_chars: int, max_chars: int) -> list[str]:
    """A sentence longer than max_chars cut into parts of about piece_chars at clause breaks."""
    parts = []
    while len(sentence) > max_chars:
        breaks = [m.end() for m in _BREAK.finditer(sentence, 0, piece_chars)]
        at = breaks[-1] if breaks else piece_chars
        parts.append(sentence[:at].strip())
        sentence = sentence[at:].strip()
    return [*parts, sentence] if sentence else parts


def split_text(text: str, piece_chars: int = 400, max_chars: int = 1000) -> list[str]:
    """Packs whole sentences into pieces as close to piece_chars as they come (at most max_chars)."""
    if not 0 < piece_chars <= max_chars:
        raise ValueError("need 0 < piece_chars <= max_chars")
    pieces: list[str] = []
    current = ""
    for sentence in sentences(text):
        for part in _cut(sentence, piece_chars, max_chars):
            joined = f"{current} {part}" if current else part
            closer = abs(len(joined) - piece_chars) <= abs(len(current) - piece_chars)
            if current and (len(joined) > max_chars or not closer):
                pieces.append(current)
                joined = part
            current = joined
    if current:
        pieces.append(current)
    return pieces
