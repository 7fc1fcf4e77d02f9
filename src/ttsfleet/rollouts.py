"""Voice revisions and canary rollouts: the vocabulary the operator, router, local fleet and gate share.

A revision names what a pool's pods speak with: a hash of its voices'
specs, so an edited TTSVoice is a new revision and an edit undone is the
old one again. A TTSPool with `spec.rollout` runs a changed revision as a
canary next to the stable one, sends it `canaryPercent` of the traffic, and
lets a gate (`ttsfleet gate`) decide whether it is promoted or rolled back.
The gate's verdict travels as an annotation on the pool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ttsfleet.manifests import GROUP, ManifestError, Voice, voice_to_manifest

REVISION_LABEL = f"{GROUP}/revision"
# On a canary's objects instead of the pool label, so the stable Deployment,
# Service and the operator's indexes never select canary pods.
CANARY_LABEL = f"{GROUP}/canary-of"
VERDICT_ANNOTATION = f"{GROUP}/gate-verdict"

# Short sentences with common words: Whisper transcribes a healthy voice
# saying them almost perfectly, so a high word error rate means a broken voice.
DEFAULT_TEXTS = (
    "The weather today is sunny and warm.",
    "Please call me back when you get home.",
    "The train to the city leaves at nine.",
    "She bought fresh bread and a bottle of milk.",
)


def voice_revision(voice: Voice) -> str:
    """The hash of a voice's spec as pods load it."""
    spec = voice_to_manifest(voice)["spec"]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def pool_revision(voices: Iterable[Voice]) -> str:
    """The hash of every voice of a pool, by name: the revision its pods carry."""
    parts = sorted(f"{v.name}={voice_revision(v)}" for v in voices)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Gate:
    """What a canary must achieve to be promoted (`spec.rollout.gate`)."""

    max_word_error_rate: float = 0.3
    max_ttfa_ratio: float = 2.0  # canary's median time to first audio over the stable one's
    max_error_rate: float = 0.0
    min_loudness_lufs: float = -40.0
    max_loudness_lufs: float = -8.0
    max_clipped_fraction: float = 0.001
    texts: tuple[str, ...] = DEFAULT_TEXTS
    language: str = "en"
    image: str = ""  # an image with `ttsfleet[gate]`; empty: the operator's --gate-image
    service_account: str = "ttsfleet-gate"
    timeout_seconds: int = 1800  # a gate Job still running then has failed


@dataclass(frozen=True)
class Rollout:
    """`spec.rollout` of a TTSPool: canary a changed revision before all pods get it."""

    canary_percent: int = 10
    canary_replicas: int = 1
    gate: Gate = field(default_factory=Gate)


_GATE_KEYS = {
    "maxWordErrorRate": "max_word_error_rate",
    "maxTtfaRatio": "max_ttfa_ratio",
    "maxErrorRate": "max_error_rate",
    "minLoudnessLufs": "min_loudness_lufs",
    "maxLoudnessLufs": "max_loudness_lufs",
    "maxClippedFraction": "max_clipped_fraction",
}


def rollout_from_spec(spec: Mapping[str, Any], where: str) -> Rollout | None:
    """A pool's rollout settings, or None when it rolls every pod at once (no `rollout`)."""
    given = spec.get("rollout")
    if given is None:
        return None
    try:
        gate_spec = given.get("gate") or {}
        gate = Gate(
            **{attr: float(gate_spec[key]) for key, attr in _GATE_KEYS.items() if key in gate_spec},
            texts=tuple(str(t) for t in gate_spec.get("texts") or DEFAULT_TEXTS),
            language=str(gate_spec.get("language", "en")),
            image=str(gate_spec.get("image", "")),
            service_account=str(gate_spec.get("serviceAccountName", "ttsfleet-gate")),
            timeout_seconds=int(gate_spec.get("timeoutSeconds", 1800)),
        )
        rollout = Rollout(
            canary_percent=int(given.get("canaryPercent", 10)),
            canary_replicas=int(given.get("canaryReplicas", 1)),
            gate=gate,
        )
    except (AttributeError, TypeError, ValueError) as error:
        raise ManifestError(f"{where}: spec.rollout: {error}") from error
    if not 0 <= rollout.canary_percent <= 100:
        raise ManifestError(f"{where}: spec.rollout.canaryPercent must be within 0-100")
    if rollout.canary_replicas < 1 or not gate.texts:
        raise ManifestError(f"{where}: spec.rollout needs canaryReplicas >= 1 and gate texts")
    return rollout


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one canary revision, with the figures behind it."""

    revision: str
    passed: bool
    reasons: tuple[str, ...] = ()
    measurements: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "reasons": list(self.reasons)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        """Reads the annotation; anything unreadable is a ManifestError naming it."""
        try:
            data = json.loads(text)
            return cls(
                revision=str(data["revision"]),
                passed=bool(data["passed"]),
                reasons=tuple(str(r) for r in data.get("reasons") or ()),
                measurements={
                    str(k): float(v) for k, v in (data.get("measurements") or {}).items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ManifestError(f"annotation {VERDICT_ANNOTATION}: {error}") from error

    def summary(self) -> str:
        figures = ", ".join(f"{k}={v:.3g}" for k, v in sorted(self.measurements.items()))
        why = "; ".join(self.reasons) if self.reasons else "every bound met"
        return f"{why} ({figures})" if figures else why
