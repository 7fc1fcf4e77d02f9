"""Saving a stream of bytes within a size cap, hashing as it goes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ttsfleet.voices.errors import VoiceSourceError


@dataclass(frozen=True)
class Saved:
    """A file written by `save`: its sha256 (hex) and size."""

    sha256: str
    size: int


def save(chunks: Iterable[bytes], dest: Path, *, what: str, max_bytes: int) -> Saved:
    """Writes `chunks` to `dest`, failing as soon as they pass `max_bytes`."""
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise VoiceSourceError(
                    "TooLarge",
                    f"{what} is larger than the limit of {max_bytes} bytes",
                    permanent=True,
                )
            digest.update(chunk)
            out.write(chunk)
    return Saved(sha256=digest.hexdigest(), size=size)
