"""A TTSVoice's status from one check of its files: pure, so it is tested without a cluster.

Ready says the operator found the voice's files and they check out (digest,
readable config, the sample rate the spec expects); Degraded says why not.
While a check runs, Ready is Unknown (reason Resolving), which Argo CD shows
as Progressing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ttsfleet.operator.status import merge_conditions
from ttsfleet.voices.config import VoiceConfig
from ttsfleet.voices.errors import VoiceSourceError


@dataclass(frozen=True)
class VoiceReport:
    """What a check found: the resolved source, and (when the operator could read the
    files) the model's digest and size and the config's contents."""

    source: str
    reason: str
    message: str
    sha256: str = ""
    size: int = 0
    config: VoiceConfig | None = None


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def _conditions(outcome: VoiceReport | VoiceSourceError | None) -> list[dict[str, Any]]:
    if outcome is None:
        message = "the operator is fetching and checking the voice's files"
        return [
            _condition("Ready", "Unknown", "Resolving", message),
            _condition("Degraded", "False", "Resolving", message),
        ]
    if isinstance(outcome, VoiceSourceError):
        return [
            _condition("Ready", "False", outcome.reason, outcome.message),
            _condition("Degraded", "True", outcome.reason, outcome.message),
        ]
    return [
        _condition("Ready", "True", outcome.reason, outcome.message),
        _condition("Degraded", "False", "AsExpected", "the voice's files check out"),
    ]


PENDING = "pending"


def verdict(body: Mapping[str, Any] | None) -> str | None:
    """What the voice's check says of its current spec, for the pools serving it.

    None: checked and usable (or no such voice); PENDING: the current spec is
    not checked yet; otherwise the Degraded reason and message.
    """
    if body is None:
        return None
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    current = status.get("observedGeneration") == body.get("metadata", {}).get("generation")
    degraded: Mapping[str, Any] = conditions.get("Degraded", {})
    if current and degraded.get("status") == "True":
        return f"{degraded.get('reason', 'Degraded')}: {degraded.get('message', '')}"
    if not current or conditions.get("Ready", {}).get("status") != "True":
        return PENDING
    return None


def sample_rate_problem(spec_rate: int, config: VoiceConfig | None) -> VoiceSourceError | None:
    """A deprecated spec.sampleRate that contradicts the voice file."""
    if not spec_rate or config is None or spec_rate == config.sample_rate:
        return None
    return VoiceSourceError(
        "SampleRateMismatch",
        f"spec.sampleRate is {spec_rate} Hz but the voice file says {config.sample_rate} Hz "
        "(spec.sampleRate is deprecated: remove it)",
        permanent=True,
    )


def voice_status(
    outcome: VoiceReport | VoiceSourceError | None,
    previous: Mapping[str, Any],
    *,
    generation: int,
    pools: Iterable[str],
    now: str,
) -> dict[str, Any]:
    """The status to write; `outcome` None means a check is under way."""
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "pools": sorted(pools),
        "conditions": merge_conditions(
            previous.get("conditions") or [], _conditions(outcome), generation=generation, now=now
        ),
    }
    if isinstance(outcome, VoiceReport):
        status["source"] = outcome.source
        if outcome.sha256:
            status["sha256"] = outcome.sha256
            status["sizeBytes"] = outcome.size
        if outcome.config is not None:
            status["sampleRate"] = outcome.config.sample_rate
            status["speakerCount"] = len(outcome.config.speakers)
            status["speakers"] = [
                {"name": name, "id": sid}
                for name, sid in sorted(outcome.config.speakers.items(), key=lambda kv: kv[1])
            ]
        status["checkedAt"] = now
    return status
