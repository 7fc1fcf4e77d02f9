"""Checking a voice once, in the operator, with the same fetcher its pods' init containers use.

A remote source is downloaded into a scratch cache (within its limits),
verified against its sha256, and its config read; the scratch copy is then
dropped, since the operator serves no audio. A package or path source is
checked where the operator can see it (an installed package, a file in its
own image); one it cannot see, or a volume, is left to the pods, and the
status says so. So is an S3 source with keys: the operator may not read
Secrets, so only the pods' init containers (given the keys) fetch and
verify it.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

from ttsfleet.manifests import VoiceSource
from ttsfleet.operator.apply import Api
from ttsfleet.operator.voice_status import VoiceReport
from ttsfleet.voices.config import VoiceConfig
from ttsfleet.voices.errors import VoiceSourceError
from ttsfleet.voices.fetch import Fetcher, describe
from ttsfleet.voices.files import VoiceFilesError, voice_files

CA_KEY = "ca.crt"


async def check_voice(api: Api, namespace: str, source: VoiceSource) -> VoiceReport:
    """The voice's report; a VoiceSourceError when its files are missing or wrong."""
    if source.volume is not None:
        return VoiceReport(
            describe(source),
            "OnVolume",
            f"read by the pods from PersistentVolumeClaim {source.volume.claim_name}",
        )
    if source.s3 is not None and source.s3.credentials_secret:
        return VoiceReport(
            describe(source),
            "CheckedByPods",
            f"fetched and verified by the pods with the keys in Secret "
            f"{source.s3.credentials_secret}, which the operator may not read",
        )
    if not source.remote:
        return await asyncio.to_thread(_check_local, source)
    ca = await _read_ca(api, namespace, source.ca_config_map) if source.ca_config_map else None
    return await asyncio.to_thread(_check_remote, source, ca)


def _check_remote(source: VoiceSource, ca: str | None) -> VoiceReport:
    with tempfile.TemporaryDirectory(prefix="ttsfleet-voice-check-") as scratch:
        ca_file = None
        if ca is not None:
            ca_file = str(Path(scratch) / CA_KEY)
            Path(ca_file).write_text(ca)
        fetched = Fetcher(Path(scratch) / "cache", ca_file=ca_file).fetch(source)
        config = VoiceConfig.read(fetched.config)
    return VoiceReport(
        fetched.resolved,
        "Verified",
        f"fetched and verified ({fetched.size} bytes, sha256 as in the spec)",
        sha256=fetched.sha256,
        size=fetched.size,
        config=config,
    )


def _check_local(source: VoiceSource) -> VoiceReport:
    try:
        model, config_path = voice_files(source)
    except VoiceFilesError as error:
        return VoiceReport(
            describe(source),
            "InPodImage",
            f"read by the pods; the operator cannot see it ({error})",
        )
    config = VoiceConfig.read(config_path)
    digest = hashlib.sha256()
    with model.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return VoiceReport(
        str(model),
        "Found",
        "found where the operator can read it",
        sha256=digest.hexdigest(),
        size=model.stat().st_size,
        config=config,
    )


async def _read_ca(api: Api, namespace: str, name: str) -> str:
    data = await api.read_config_map_data(namespace, name)
    if data is None or CA_KEY not in data:
        raise VoiceSourceError(
            "MissingCA",
            f"ConfigMap {name} with key {CA_KEY} (spec.source.caConfigMap) not found",
            permanent=True,
        )
    return data[CA_KEY]
