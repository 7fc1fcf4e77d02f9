"""TTSVoice and TTSPool manifests as typed values, and the pod configuration built from them.

The CRDs in `crds/` are the source of truth for the API; this module reads
the same YAML (from a file for the local fleet, from the API server for the
operator and the router) into frozen dataclasses with the CRD's defaults
applied (a unit test holds the two sets of defaults equal). `PodConfig` is
what the operator (or the local fleet) writes for a pool and what each
inference pod reads: one typed value on both sides of the ConfigMap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GROUP = "ttsfleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
POOLS, VOICES = "ttspools", "ttsvoices"  # plurals, as API paths name them
# On every object the operator makes for a pool, and on the EndpointSlices of
# its Service: how the router finds a pool's pods.
POOL_LABEL = f"{GROUP}/pool"
GRPC_PORT_NAME = "grpc"
ENGINES = ("piper-onnx", "piper-torch")
DEVICES = ("cpu", "cuda")

# The CRD's defaults (crds/ttspools.yaml), stated once for Python.
DEFAULT_QUEUE_LIMIT = 32
DEFAULT_MAX_TEXT_LENGTH = 5000
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_MAX_WAIT_MS = 5
DEFAULT_TF32 = False
# Under gRPC clients' default 4 MiB receive limit, with room for estimates.
DEFAULT_MAX_UNARY_BYTES = 3 * 2**20
# Sources of a voice's weights (TTSVoice spec.source), and those fetched over a network.
SOURCE_KINDS = ("package", "path", "url", "huggingface", "oci", "s3", "volume")
REMOTE_KINDS = ("url", "huggingface", "oci", "s3")
DEFAULT_MAX_VOICE_BYTES = 2**30
# A lexicon word: what a whole-word match in text can find.
LEXICON_WORD = re.compile(r"[^\W_](?:[\w'-]*[^\W_])?")


class ManifestError(ValueError):
    """A manifest that cannot be used, with a message that names the object and field."""


@dataclass(frozen=True)
class HuggingFaceFile:
    """A file in a Hugging Face-style repository: `<endpoint>/<repo>/resolve/<revision>/<file>`."""

    repo: str
    file: str
    revision: str = "main"
    endpoint: str = "https://huggingface.co"


@dataclass(frozen=True)
class OciArtifact:
    """An OCI artifact (or image) whose layers are the `.onnx` and `.onnx.json` files."""

    reference: str
    plain_http: bool = False


@dataclass(frozen=True)
class S3Object:
    """An object in S3-compatible storage; its config is the key with `.json` appended."""

    endpoint: str
    bucket: str
    key: str
    region: str = "us-east-1"
    credentials_secret: str = ""


@dataclass(frozen=True)
class ClaimPath:
    """A `.onnx` model (or a directory with one) on a PersistentVolumeClaim."""

    claim_name: str
    path: str = "/"


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one remote download, so a wrong source fails instead of filling a disk or hanging."""

    max_bytes: int = DEFAULT_MAX_VOICE_BYTES
    connect_seconds: float = 10.0
    read_seconds: float = 30.0
    total_seconds: float = 600.0


@dataclass(frozen=True)
class VoiceSource:
    """Where a voice's weights come from: exactly one of the kinds in SOURCE_KINDS is set.

    Remote kinds (REMOTE_KINDS) carry the model's sha256, checked on every
    download; `ca_config_map` names a ConfigMap whose `ca.crt` verifies HTTPS.
    """

    package: str | None = None
    path: str | None = None
    url: str | None = None
    huggingface: HuggingFaceFile | None = None
    oci: OciArtifact | None = None
    s3: S3Object | None = None
    volume: ClaimPath | None = None
    sha256: str = ""
    ca_config_map: str = ""
    limits: FetchLimits = field(default_factory=FetchLimits)

    @property
    def kind(self) -> str:
        """Which of SOURCE_KINDS this source is."""
        return next(k for k in SOURCE_KINDS if getattr(self, k) is not None)

    @property
    def remote(self) -> bool:
        """Downloaded (and digest-checked) before a pod can load it."""
        return self.kind in REMOTE_KINDS


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
    # Pronunciations: (word, IPA phonemes), matched whole-word and case-blind.
    lexicon: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS


@dataclass(frozen=True)
class Gpu:
    """How a pod uses a CUDA device; ignored on CPU."""

    tf32: bool = DEFAULT_TF32


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 4
    # Seconds of audio accepted and not yet spoken, per pod (not a request
    # count: a 1,000-word request is a hundred times a 10-word one).
    target_queued_audio_seconds: float = 30.0
    scale_down_stabilization_seconds: int = 120

    @property
    def scales_from_zero(self) -> bool:
        """The pool may sleep at zero pods; the router holds its requests and wakes it.

        Whoever puts it to sleep: the operator (enabled) or KEDA (not enabled).
        """
        return self.min_replicas == 0


@dataclass(frozen=True)
class Pool:
    """A TTSPool: replicas of inference pods serving a set of voices."""

    name: str
    voices: tuple[str, ...]
    default_voice: str
    replicas: int = 1
    device: str = "cpu"
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH
    max_unary_bytes: int = DEFAULT_MAX_UNARY_BYTES
    batching: Batching = field(default_factory=Batching)
    gpu: Gpu = field(default_factory=Gpu)
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
    source = source_from_manifest(_require(spec, "source", where), where)
    engine = spec.get("engine", "piper-onnx")
    if engine not in ENGINES:
        raise ManifestError(f"{where}: spec.engine {engine!r} is not one of {', '.join(ENGINES)}")
    defaults = spec.get("defaults") or {}
    return Voice(
        name=name,
        engine=engine,
        source=source,
        language=spec.get("language", ""),
        sample_rate=int(spec.get("sampleRate", 0)),
        defaults=VoiceDefaults(
            speed=float(defaults.get("speed", 1.0)),
            noise_scale=_optional_float(defaults.get("noiseScale")),
            noise_w=_optional_float(defaults.get("noiseW")),
            speaker=defaults.get("speaker"),
        ),
        lexicon=lexicon_from_manifest(spec.get("lexicon") or [], where),
    )


def lexicon_from_manifest(entries: Any, where: str) -> tuple[tuple[str, str], ...]:
    """spec.lexicon: [{word, phonemes}]; a word is letters, digits, apostrophes and hyphens."""
    if not isinstance(entries, list):
        raise ManifestError(f"{where}: spec.lexicon must be a list of {{word, phonemes}}")
    lexicon = []
    for index, entry in enumerate(entries):
        word = str(entry.get("word", "")).strip() if isinstance(entry, Mapping) else ""
        phonemes = str(entry.get("phonemes", "")).strip() if isinstance(entry, Mapping) else ""
        if not LEXICON_WORD.fullmatch(word) or not phonemes or "]]" in phonemes:
            raise ManifestError(
                f"{where}: spec.lexicon[{index}] needs a word (letters, digits, ' or -) "
                "and its phonemes (IPA, without ]])"
            )
        lexicon.append((word, phonemes))
    return tuple(lexicon)


def pool_from_manifest(manifest: Mapping[str, Any]) -> Pool:
    """Reads a TTSPool object, applying the CRD's defaults."""
    name = _require(manifest.get("metadata", {}), "name", "TTSPool")
    where = f"TTSPool {name}"
    spec = manifest.get("spec") or {}
    voices = tuple(_require(spec, "voices", where))
    default_voice = pool_default_voice(spec)
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
        queue_limit=int((spec.get("queue") or {}).get("maxDepth", DEFAULT_QUEUE_LIMIT)),
        max_text_length=int(spec.get("maxTextLength", DEFAULT_MAX_TEXT_LENGTH)),
        max_unary_bytes=int(spec.get("maxUnaryResponseBytes", DEFAULT_MAX_UNARY_BYTES)),
        batching=batching_from_manifest(batching),
        gpu=gpu_from_manifest(spec.get("gpu") or {}),
        autoscaling=autoscaling_from_manifest(scaling),
        raw_spec=spec,
    )
    if pool.replicas < 0 or pool.queue_limit < 1 or pool.batching.max_batch_size < 1:
        raise ManifestError(f"{where}: replicas, queue.maxDepth and maxBatchSize must be positive")
    return pool


def pool_default_voice(spec: Mapping[str, Any]) -> str:
    """A pool's voice for requests that name none: spec.defaultVoice, else its first voice."""
    return str(spec.get("defaultVoice") or next(iter(spec.get("voices") or ()), ""))


def autoscaling_from_manifest(scaling: Mapping[str, Any]) -> Autoscaling:
    """A pool's spec.autoscaling with the CRD's defaults (the router reads it too)."""
    return Autoscaling(
        enabled=bool(scaling.get("enabled", False)),
        min_replicas=int(scaling.get("minReplicas", 1)),
        max_replicas=int(scaling.get("maxReplicas", 4)),
        target_queued_audio_seconds=float(scaling.get("targetQueuedAudioSeconds", 30)),
        scale_down_stabilization_seconds=int(scaling.get("scaleDownStabilizationSeconds", 120)),
    )


def batching_from_manifest(batching: Mapping[str, Any]) -> Batching:
    return Batching(
        max_batch_size=int(batching.get("maxBatchSize", DEFAULT_MAX_BATCH_SIZE)),
        max_wait_ms=int(batching.get("maxWaitMilliseconds", DEFAULT_MAX_WAIT_MS)),
    )


def gpu_from_manifest(gpu: Mapping[str, Any]) -> Gpu:
    return Gpu(tf32=bool(gpu.get("tf32", DEFAULT_TF32)))


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def source_from_manifest(source: Mapping[str, Any], where: str) -> VoiceSource:
    """Reads spec.source: one kind, and the sha256 every remote kind needs."""
    given = [k for k in SOURCE_KINDS if source.get(k)]
    if len(given) != 1:
        raise ManifestError(f"{where}: spec.source needs exactly one of {', '.join(SOURCE_KINDS)}")
    kind = given[0]
    digest = str(source.get("sha256") or "").lower()
    if kind in REMOTE_KINDS and not _SHA256.match(digest):
        raise ManifestError(
            f"{where}: spec.source.sha256 must be the model's 64-hex-digit sha256 "
            f"for a {kind} source"
        )
    value: Any = source[kind]
    try:
        if kind == "huggingface":
            value = HuggingFaceFile(**{_SNAKE[k]: v for k, v in value.items()})
        elif kind == "oci":
            value = OciArtifact(**{_SNAKE[k]: v for k, v in value.items()})
        elif kind == "s3":
            value = S3Object(**{_SNAKE[k]: v for k, v in value.items()})
        elif kind == "volume":
            value = ClaimPath(**{_SNAKE[k]: v for k, v in value.items()})
        limits = FetchLimits(**{_SNAKE[k]: v for k, v in (source.get("limits") or {}).items()})
    except (KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"{where}: spec.source.{kind} is not valid: {error}") from error
    return VoiceSource(
        **{kind: value},
        sha256=digest,
        ca_config_map=str(source.get("caConfigMap") or ""),
        limits=limits,
    )


def source_to_manifest(source: VoiceSource) -> dict[str, Any]:
    """The inverse of source_from_manifest (what a pod config or init container carries)."""
    kind = source.kind
    value = getattr(source, kind)
    manifest: dict[str, Any] = {
        kind: value if isinstance(value, str) else {_CAMEL[k]: v for k, v in vars(value).items()}
    }
    if source.sha256:
        manifest["sha256"] = source.sha256
    if source.ca_config_map:
        manifest["caConfigMap"] = source.ca_config_map
    if source.limits != FetchLimits():
        manifest["limits"] = {_CAMEL[k]: v for k, v in vars(source.limits).items()}
    return manifest


# The source's nested fields: the CRD's camelCase names and the dataclasses' own.
_CAMEL = {
    "repo": "repo",
    "file": "file",
    "revision": "revision",
    "endpoint": "endpoint",
    "reference": "reference",
    "plain_http": "plainHttp",
    "bucket": "bucket",
    "key": "key",
    "region": "region",
    "credentials_secret": "credentialsSecret",
    "claim_name": "claimName",
    "path": "path",
    "max_bytes": "maxBytes",
    "connect_seconds": "connectTimeoutSeconds",
    "read_seconds": "readTimeoutSeconds",
    "total_seconds": "totalTimeoutSeconds",
}
_SNAKE = {camel: snake for snake, camel in _CAMEL.items()}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Manifests:
    """Every voice and pool found in a set of manifests."""

    voices: Mapping[str, Voice]
    pools: tuple[Pool, ...]

    def voices_of(self, pool: Pool) -> list[Voice]:
        """The pool's voices, failing clearly on a name with no TTSVoice."""
        missing = [v for v in pool.voices if v not in self.voices]
        if missing:
            raise ManifestError(f"TTSPool {pool.name}: no TTSVoice named {', '.join(missing)}")
        return [self.voices[v] for v in pool.voices]


def manifests_from_documents(documents: Iterable[Mapping[str, Any] | None]) -> Manifests:
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
    return Manifests(voices=voices, pools=tuple(pools))


def load_manifests(path: Path) -> Manifests:
    """Reads a multi-document YAML file of manifests."""
    try:
        with path.open(encoding="utf-8") as stream:
            return manifests_from_documents(list(yaml.safe_load_all(stream)))
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from error


@dataclass(frozen=True)
class PodConfig:
    """What one inference pod of a pool loads: the operator's ConfigMap, the local fleet's file.

    Plain data on the way through (`to_dict` / `from_dict` round-trip YAML),
    typed at both ends; the voices travel whole, parsed once when read.
    """

    pool: str
    default_voice: str
    voices: tuple[Voice, ...]
    device: str = "cpu"
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH
    max_unary_bytes: int = DEFAULT_MAX_UNARY_BYTES
    batching: Batching = field(default_factory=Batching)
    gpu: Gpu = field(default_factory=Gpu)

    @classmethod
    def of(cls, pool: Pool, voices: Iterable[Voice]) -> PodConfig:
        """The configuration of `pool`'s pods."""
        return cls(
            pool=pool.name,
            default_voice=pool.default_voice,
            voices=tuple(voices),
            device=pool.device,
            queue_limit=pool.queue_limit,
            max_text_length=pool.max_text_length,
            max_unary_bytes=pool.max_unary_bytes,
            batching=pool.batching,
            gpu=pool.gpu,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "defaultVoice": self.default_voice,
            "device": self.device,
            "queueLimit": self.queue_limit,
            "maxTextLength": self.max_text_length,
            "maxUnaryResponseBytes": self.max_unary_bytes,
            "batching": {
                "maxBatchSize": self.batching.max_batch_size,
                "maxWaitMilliseconds": self.batching.max_wait_ms,
            },
            "gpu": {"tf32": self.gpu.tf32},
            "voices": [voice_to_manifest(v) for v in self.voices],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PodConfig:
        """Reads a pod configuration; a missing or wrong field is a ManifestError naming it."""
        if not isinstance(data, Mapping):
            raise ManifestError("pod configuration: expected a mapping")
        listed = _require(data, "voices", "pod configuration")
        if not isinstance(listed, list) or not all(isinstance(v, Mapping) for v in listed):
            raise ManifestError("pod configuration: voices must be a list of TTSVoice objects")
        voices = tuple(voice_from_manifest(v) for v in listed)
        config = cls(
            pool=str(data.get("pool", "")),
            default_voice=str(_require(data, "defaultVoice", "pod configuration")),
            voices=voices,
            device=str(data.get("device", "cpu")),
            queue_limit=int(data.get("queueLimit", DEFAULT_QUEUE_LIMIT)),
            max_text_length=int(data.get("maxTextLength", DEFAULT_MAX_TEXT_LENGTH)),
            max_unary_bytes=int(data.get("maxUnaryResponseBytes", DEFAULT_MAX_UNARY_BYTES)),
            batching=batching_from_manifest(data.get("batching") or {}),
            gpu=gpu_from_manifest(data.get("gpu") or {}),
        )
        if config.default_voice not in {v.name for v in voices}:
            raise ManifestError(
                f"pod configuration: defaultVoice {config.default_voice!r} is not among its voices"
            )
        return config


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
    return {
        "apiVersion": API_VERSION,
        "kind": "TTSVoice",
        "metadata": {"name": voice.name},
        "spec": {
            "engine": voice.engine,
            "source": source_to_manifest(voice.source),
            "language": voice.language,
            "sampleRate": voice.sample_rate,
            "defaults": defaults,
            "lexicon": [{"word": word, "phonemes": ph} for word, ph in voice.lexicon],
        },
    }
