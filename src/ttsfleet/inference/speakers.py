"""A voice's speakers, and which one a request names.

A multi-speaker voice serves all its speakers from one model: a request
picks one by name or by id in decimal (`TTSRequest.speaker`), and an empty
choice gets the voice's default. The answer is the speaker id the model's
embedding table is indexed by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from ttsfleet.errors import TTSError
from ttsfleet.manifests import ManifestError

# Speakers named in an "unknown speaker" message; ListVoices lists them all.
_LISTED = 10


@dataclass(frozen=True)
class Speaker:
    name: str
    id: int


@dataclass(frozen=True)
class Speakers:
    """The speakers of one voice, by id; none (and no default) for a single-speaker voice."""

    table: tuple[Speaker, ...] = ()
    default: int | None = None

    @classmethod
    def of(cls, voice: str, count: int, names: Mapping[str, int], default: int | None) -> Speakers:
        """From the voice file's speaker count and names, and the default speaker id.

        An id without a name is named by its id; a default that is not one
        of the voice's speakers is a configuration error, found at load time.
        """
        if count <= 1:
            if default:
                raise ManifestError(
                    f"voice {voice}: defaults.speaker {default} is set, but the voice has "
                    "a single speaker"
                )
            return cls()
        by_id = {speaker_id: name for name, speaker_id in names.items()}
        table = tuple(Speaker(by_id.get(i, str(i)), i) for i in range(count))
        chosen = default or 0
        if not 0 <= chosen < count:
            raise ManifestError(
                f"voice {voice}: defaults.speaker {chosen} is not a speaker id of the voice "
                f"(it has {count}: 0-{count - 1})"
            )
        return cls(table, chosen)

    def resolve(self, voice: str, requested: str) -> int | None:
        """The speaker id a request asks for: a name, an id in decimal, or empty for the default."""
        if not requested:
            return self.default
        for speaker in self.table:
            if requested == speaker.name:
                return speaker.id
        if requested.isdecimal() and int(requested) < len(self.table):
            return int(requested)
        if not self.table:
            raise TTSError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"speaker {requested!r}: voice {voice!r} has a single speaker; leave speaker empty",
            )
        listed = ", ".join(f"{s.name} ({s.id})" for s in self.table[:_LISTED])
        more = len(self.table) - _LISTED
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"unknown speaker {requested!r} for voice {voice!r}; it has {listed}"
            + (f" and {more} more (ListVoices lists them)" if more > 0 else ""),
            field="speaker",
        )
