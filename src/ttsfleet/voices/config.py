"""What the operator reports about a voice, read from its Piper `.onnx.json` config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ttsfleet.voices.errors import VoiceSourceError


@dataclass(frozen=True)
class VoiceConfig:
    """The config's output sample rate and its speakers (name → id; empty for one speaker)."""

    sample_rate: int
    speakers: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> VoiceConfig:
        """Reads `audio.sample_rate` and `speaker_id_map`, refusing a config without them."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rate = data["audio"]["sample_rate"]
            speakers = data.get("speaker_id_map") or {}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise VoiceSourceError(
                "BadConfig", f"voice config {path.name} is unreadable: {error!r}", permanent=True
            ) from error
        valid_speakers = isinstance(speakers, dict) and all(
            isinstance(k, str) and isinstance(v, int) for k, v in speakers.items()
        )
        if not isinstance(rate, int) or rate <= 0 or not valid_speakers:
            raise VoiceSourceError(
                "BadConfig",
                f"voice config {path.name}: audio.sample_rate must be a positive integer "
                "and speaker_id_map a map of names to integer ids",
                permanent=True,
            )
        return cls(sample_rate=rate, speakers=dict(speakers))
