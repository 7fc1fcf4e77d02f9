"""OpenAI's voice names as fleet voices, so that clients written for OpenAI work unchanged.

Clients (the SDK's examples, Open WebUI, most integrations) send `alloy` or
`nova`; a fleet has its own voices. Each OpenAI name goes to the voice the
gateway is configured with (`--openai-voice alloy=joe`), or else to the
fleet's default voice. Any other name is a fleet voice and passes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OPENAI_VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "cedar",
        "coral",
        "echo",
        "fable",
        "marin",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
    }
)


@dataclass(frozen=True)
class VoiceMap:
    """Configured names first; an unconfigured OpenAI name means the fleet's default ("")."""

    voices: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        if name in self.voices:
            return self.voices[name]
        return "" if name in OPENAI_VOICES else name

    @classmethod
    def parse(cls, entries: Iterable[str]) -> VoiceMap:
        """From NAME=VOICE entries (one per --openai-voice flag)."""
        voices = {}
        for entry in entries:
            name, _, voice = entry.partition("=")
            if not (name and voice):
                raise ValueError(f"expected NAME=VOICE, got {entry!r}")
            voices[name] = voice
        return cls(voices)
