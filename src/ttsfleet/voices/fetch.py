"""Fetching a remote voice into a cache keyed by its sha256, verifying it on the way.

The cache entry `<cache>/sha256/<digest>/` holds `model.onnx` and
`model.onnx.json`; it appears (by an atomic rename) only once the model's
digest matched, so an entry present is an entry verified. With the cache on
a node-local directory, a second pod of the same voice on that node (a
scale-up, a restart) reads the entry and makes no request at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import urllib3

from ttsfleet.manifests import VoiceSource
from ttsfleet.voices.config import VoiceConfig
from ttsfleet.voices.download import save
from ttsfleet.voices.errors import VoiceSourceError
from ttsfleet.voices.http import MAX_DOCUMENT_BYTES, chunks, open_url, pool_manager
from ttsfleet.voices.oci import Registry
from ttsfleet.voices.s3 import Bucket, S3Credentials

MODEL, CONFIG = "model.onnx", "model.onnx.json"


def cache_entry(cache: Path, sha256: str) -> Path:
    """Where a verified voice with this model digest lives in the cache."""
    return cache / "sha256" / sha256


@dataclass(frozen=True)
class Fetched:
    """A verified voice in the cache, what its source resolved to, and whether it was there."""

    model: Path
    config: Path
    sha256: str
    size: int
    resolved: str
    cached: bool


@dataclass(frozen=True)
class _Remote:
    """A located voice: its resolved name, and readers of its files given the fetch's deadline."""

    resolved: str
    model: Callable[[float], Iterator[bytes]]
    config: Callable[[float], Iterator[bytes]]


class Fetcher:
    """Fetches remote voice sources into `cache`, with a CA file and S3 keys when given."""

    def __init__(
        self, cache: Path, *, ca_file: str | None = None, s3: S3Credentials | None = None
    ) -> None:
        self._cache = cache
        self._ca_file = ca_file
        self._s3 = s3

    def fetch(self, source: VoiceSource) -> Fetched:
        """The voice's files, downloaded and verified unless the cache already holds them."""
        if not source.remote:
            raise VoiceSourceError(
                "NotRemote", f"a {source.kind} source is not fetched", permanent=True
            )
        entry = cache_entry(self._cache, source.sha256)
        if (entry / MODEL).is_file() and (entry / CONFIG).is_file():
            size = (entry / MODEL).stat().st_size
            return Fetched(
                entry / MODEL, entry / CONFIG, source.sha256, size, describe(source), True
            )
        self._cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self._cache))
        try:
            return self._download(source, staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download(self, source: VoiceSource, staging: Path, entry: Path) -> Fetched:
        limits = source.limits
        deadline = time.monotonic() + limits.total_seconds
        with pool_manager(limits, self._ca_file) as http:
            remote = self._locate(source, http)
            saved = save(
                remote.model(deadline),
                staging / MODEL,
                what=remote.resolved,
                max_bytes=limits.max_bytes,
            )
            if saved.sha256 != source.sha256:
                raise VoiceSourceError(
                    "DigestMismatch",
                    f"{remote.resolved} has sha256 {saved.sha256}, "
                    f"but spec.source.sha256 is {source.sha256}",
                    permanent=True,
                )
            save(
                remote.config(deadline),
                staging / CONFIG,
                what=f"the config of {remote.resolved}",
                max_bytes=MAX_DOCUMENT_BYTES,
            )
        VoiceConfig.read(staging / CONFIG)  # an unreadable config never enters the cache
        entry.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, entry)
        except OSError:
            if not (entry / MODEL).is_file():  # not another fetch of the same voice winning
                raise
        return Fetched(
            entry / MODEL, entry / CONFIG, saved.sha256, saved.size, remote.resolved, False
        )

    def _locate(self, source: VoiceSource, http: urllib3.PoolManager) -> _Remote:
        """Where the model and its config are read from, per source kind."""
        if source.oci is not None:
            registry = Registry(http, source.oci)
            layers = registry.layers()
            return _Remote(
                layers.resolved,
                lambda deadline: registry.blob(layers.model, deadline),
                lambda deadline: registry.blob(layers.config, deadline),
            )
        if source.s3 is not None:
            bucket, key = Bucket(http, source.s3, self._s3), source.s3.key
            return _Remote(
                describe(source),
                lambda deadline: bucket.read(key, deadline),
                lambda deadline: bucket.read(key + ".json", deadline),
            )
        url = describe(source)
        return _Remote(
            url,
            lambda deadline: chunks(open_url(http, url), url, deadline),
            lambda deadline: chunks(open_url(http, url + ".json"), url + ".json", deadline),
        )


def describe(source: VoiceSource) -> str:
    """The source as one string: the URL it is read from, or its reference."""
    if source.huggingface is not None:
        hf = source.huggingface
        return f"{hf.endpoint.rstrip('/')}/{hf.repo}/resolve/{hf.revision}/{hf.file}"
    if source.oci is not None:
        return source.oci.reference
    if source.s3 is not None:
        return f"s3://{source.s3.bucket}/{source.s3.key} at {source.s3.endpoint}"
    if source.volume is not None:
        return f"pvc/{source.volume.claim_name}:{source.volume.path}"
    return str(getattr(source, source.kind))
