"""TTSVoice and TTSPool manifests as typed values, shared by every component.

The CRDs in `crds/` are the source of truth for the API; this module reads
the same YAML (from a file for the local fleet, from the API server for the
operator) into frozen dataclasses with the CRD's defaults applied, and builds
the pod configuration that an inference pod loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GROUP = "ttsfleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
ENGINES = ("piper-onnx", "piper-torch")
DEVICES = ("cpu", "cuda")


class ManifestError(ValueError):
    """A manifest that cannot be used, with a message that names the object and field."""


@dataclass(frozen=True)
class VoiceSource:
    """Where a voice's weights come from: exactly one of these is set."""

    package: str | None = None
    path: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class VoiceDefaults:
    """Synthesis defaults; None means the voice file's own value."""

    speed: float = 1.0
    noise_scale: float | None = None
    noise_w: float | None = None
    speaker: int | None = None


@dataclass(frozen=True)
class Voice:
    """A TTSVoice: one named voice and how to run it."""

    name: str
    source: VoiceSource
    engine: str = "piper-onnx"
    language: str = ""
    sample_rate: int = 0
    defaults: VoiceDefaults = field(default_factory=VoiceDefaults)


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 8
    max_wait_ms: int = 5


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 4
    target_queue_depth: float = 4.0
    scale_down_stabilization_seconds: int = 120


@dataclass(frozen=True)
class Pool:
    """A TTSPool: replicas of inference pods serving a set of voices."""

    name: str
    voices: tuple[str, ...]
    default_voice: str
    replicas: int = 1
    device: str = "cpu"
    queue_limit: int = 32
    max_text_length: int = 5000
    batching: Batching = field(default_factory=Batching)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    raw_spec: Mapping[str, Any] = field(default_factory=dict, compare=False)


def _require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj or obj[key] in (None, ""):
        raise ManifestError(f"{where}: {key} is required")
    return obj[key]


def voice_from_manifest(manifest: Mapping[str, Any]) -> Voice:
    """Reads a TTSVoice object (as YAML or as returned by the API server)."""
    name = _require(manifest.get("metadata", {}), "name", "TTSVoice")
    where = f"TTSVoice {name}"
    spec = manifest.get("spec") or {}
    source = _require(spec, "source", where)
    given = [k for k in ("package", "path", "url") if source.get(k)]
    if len(given) != 1:
        raise ManifestError(f"{where}: spec.source needs exactly one of package, path, url")
    engine = spec.get("engine", "piper-onnx")
    if engine not in ENGINES:
        raise ManifestError(f"{where}: spec.engine {engine!r} is not one of {', '.join(ENGINES)}")
    defaults = spec.get("defaults") or {}
    return Voice(
        name=name,
        engine=engine,
        source=VoiceSource(**{k: source.get(k) for k in ("package", "path", "url")}),
        language=spec.get("language", ""),
        sample_rate=int(spec.get("sampleRate", 0)),
        defaults=VoiceDefaults(
            speed=float(defaults.get("speed", 1.0)),
            noise_scale=_optional_float(defaults.get("noiseScale")),
            noise_w=_optional_float(defaults.get("noiseW")),
            speaker=defaults.get("speaker"),
        ),
    )


def pool_from_manifest(manifest: Mapping[str, Any]) -> Pool:
    """Reads a TTSPool object, applying the CRD's defaults."""
    name = _require(manifest.get("metadata", {}), "name", "TTSPool")
    where = f"TTSPool {name}"
    spec = manifest.get("spec") or {}
    voices = tuple(_require(spec, "voices", where))
    default_voice = spec.get("defaultVoice") or voices[0]
    if default_voice not in voices:
        raise ManifestError(f"{where}: spec.defaultVoice {default_voice!r} is not in spec.voices")
    device = spec.get("device", "cpu")
    if device not in DEVICES:
        raise ManifestError(f"{where}: spec.device {device!r} is not one of {', '.join(DEVICES)}")
    batching = spec.get("batching") or {}
    scaling = spec.get("autoscaling") or {}
    pool = Pool(
        name=name,
        voices=voices,
        default_voice=default_voice,
        replicas=int(spec.get("replicas", 1)),
        device=device,
        queue_limit=int((spec.get("queue") or {}).get("maxDepth", 32)),
        max_text_length=int(spec.get("maxTextLength", 5000)),
        batching=Batching(
            max_batch_size=int(batching.get("maxBatchSize", 8)),
            max_wait_ms=int(batching.get("maxWaitMilliseconds", 5)),
        ),
        autoscaling=Autoscaling(
            enabled=bool(scaling.get("enabled", False)),
            min_replicas=int(scaling.get("minReplicas", 1)),
            max_replicas=int(scaling.get("maxReplicas", 4)),
            target_queue_depth=float(scaling.get("targetQueueDepth", 4)),
            scale_down_stabilization_seconds=int(scaling.get("scaleDownStabilizationSeconds", 120)),
        ),
        raw_spec=spec,
    )
    if pool.replicas < 0 or pool.queue_limit < 1 or pool.batching.max_batch_size < 1:
        raise ManifestError(f"{where}: replicas, queue.maxDepth and maxBatchSize must be positive")
    return pool


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Fleet:
    """Every voice and pool found in a set of manifests."""

    voices: Mapping[str, Voice]
    pools: tuple[Pool, ...]

    def voices_of(self, pool: Pool) -> list[Voice]:
        """The pool's voices, failing clearly on a name with no TTSVoice."""
        missing = [v for v in pool.voices if v not in self.voices]
        if missing:
            raise ManifestError(f"TTSPool {pool.name}: no TTSVoice named {', '.join(missing)}")
        return [self.voices[v] for v in pool.voices]


def fleet_from_documents(documents: Iterable[Mapping[str, Any] | None]) -> Fleet:
    """Collects TTSVoices and TTSPools from YAML documents, ignoring other kinds."""
    voices: dict[str, Voice] = {}
    pools: list[Pool] = []
    for doc in documents:
        if not doc:
            continue
        kind = doc.get("kind")
        if kind in ("TTSVoice", "TTSPool") and doc.get("apiVersion") != API_VERSION:
            raise ManifestError(f"{kind}: apiVersion must be {API_VERSION}")
        if kind == "TTSVoice":
            voice = voice_from_manifest(doc)
            voices[voice.name] = voice
        elif kind == "TTSPool":
            pools.append(pool_from_manifest(doc))
    return Fleet(voices=voices, pools=tuple(pools))


def load_fleet(path: Path) -> Fleet:
    """Reads a multi-document YAML file of manifests."""
    try:
        with path.open(encoding="utf-8") as stream:
            return fleet_from_documents(list(yaml.safe_load_all(stream)))
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from error


# The pod configuration: what the operator puts in a pool's ConfigMap and the
# local fleet writes to a file. It is plain data so that it round-trips YAML.


def pod_config(pool: Pool, voices: Iterable[Voice]) -> dict[str, Any]:
    """The configuration one inference pod of `pool` loads."""
    return {
        "pool": pool.name,
        "defaultVoice": pool.default_voice,
        "device": pool.device,
        "queueLimit": pool.queue_limit,
        "maxTextLength": pool.max_text_length,
        "batching": {
            "maxBatchSize": pool.batching.max_batch_size,
            "maxWaitMilliseconds": pool.batching.max_wait_ms,
        },
        "voices": [voice_to_manifest(v) for v in voices],
    }


def voice_to_manifest(voice: Voice) -> dict[str, Any]:
    """The inverse of voice_from_manifest, so a pod config can carry whole voices."""
    defaults: dict[str, Any] = {"speed": voice.defaults.speed}
    for key, value in (
        ("noiseScale", voice.defaults.noise_scale),
        ("noiseW", voice.defaults.noise_w),
        ("speaker", voice.defaults.speaker),
    ):
        if value is not None:
            defaults[key] = value
    source = {k: v for k, v in vars(voice.source).items() if v}
    return {
        "apiVersion": API_VERSION,
        "kind": "TTSVoice",
        "metadata": {"name": voice.name},
        "spec": {
            "engine": voice.engine,
            "source": source,
            "language": voice.language,
            "sampleRate": voice.sample_rate,
            "defaults": defaults,
        },
    }
