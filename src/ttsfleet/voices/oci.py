"""OCI artifacts (or images) as voice sources, read with the distribution API over HTTP(S).

The voice is two layers of one manifest, told apart by their
`org.opencontainers.image.title` annotations (`*.onnx` and `*.onnx.json`), as
`oras push` writes them. Anonymous bearer tokens are fetched when the
registry asks for one (public repositories on most registries).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3

from ttsfleet.manifests import OciArtifact
from ttsfleet.voices.errors import VoiceSourceError
from ttsfleet.voices.http import chunks, open_url, read_json

TITLE = "org.opencontainers.image.title"
UNAUTHORIZED = frozenset({401})
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@dataclass(frozen=True)
class Reference:
    """`registry/repository[:tag][@digest]`, split."""

    registry: str
    repository: str
    tag_or_digest: str

    @classmethod
    def parse(cls, text: str) -> Reference:
        registry, _, rest = text.partition("/")
        if not rest or ("." not in registry and ":" not in registry and registry != "localhost"):
            raise VoiceSourceError(
                "BadReference",
                f"OCI reference {text!r} must start with a registry host (registry/repository:tag)",
                permanent=True,
            )
        repository, _, digest = rest.partition("@")
        if not digest:
            name, colon, tag = repository.rpartition(":")
            repository, digest = (name, tag) if colon and "/" not in tag else (repository, "latest")
        return cls(registry=registry, repository=repository, tag_or_digest=digest)


@dataclass(frozen=True)
class Layers:
    """The artifact's manifest digest and the blobs of the model and its config."""

    resolved: str
    model: str
    config: str


class Registry:
    """One registry conversation: the manifest, then blobs, with one token if asked."""

    def __init__(self, http: urllib3.PoolManager, artifact: OciArtifact) -> None:
        self._http = http
        self._ref = Reference.parse(artifact.reference)
        scheme = "http" if artifact.plain_http else "https"
        self._base = f"{scheme}://{self._ref.registry}/v2/{self._ref.repository}"
        self._headers: dict[str, str] = {}

    def layers(self) -> Layers:
        url = f"{self._base}/manifests/{self._ref.tag_or_digest}"
        response = self._get(url, {"Accept": MANIFEST_TYPES})
        digest = response.headers.get("Docker-Content-Digest") or self._ref.tag_or_digest
        manifest = read_json(response, f"manifest {url}")
        titled = {
            str(layer.get("annotations", {}).get(TITLE, "")): str(layer.get("digest"))
            for layer in _layers(manifest, url)
        }
        models = [title for title in titled if title.endswith(".onnx")]
        if len(models) != 1 or models[0] + ".json" not in titled:
            raise VoiceSourceError(
                "BadArtifact",
                f"{url}: expected one layer titled *.onnx and its *.onnx.json, found {sorted(titled)}",
                permanent=True,
            )
        ref = self._ref
        return Layers(
            resolved=f"{ref.registry}/{ref.repository}@{digest}",
            model=titled[models[0]],
            config=titled[models[0] + ".json"],
        )

    def blob(self, digest: str, deadline: float) -> Iterator[bytes]:
        url = f"{self._base}/blobs/{digest}"
        return chunks(self._get(url, {}), f"blob {url}", deadline)

    def _get(self, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """GET, answering one Bearer challenge with an anonymous token."""
        response = open_url(self._http, url, {**headers, **self._headers}, allow=UNAUTHORIZED)
        if response.status not in UNAUTHORIZED:
            return response
        response.release_conn()
        challenge = response.headers.get("WWW-Authenticate", "")
        if "Authorization" in self._headers or not challenge.lower().startswith("bearer "):
            raise VoiceSourceError(
                "Unauthorized", f"GET {url}: HTTP 401 and no anonymous token", permanent=True
            )
        self._headers["Authorization"] = "Bearer " + self._token(challenge[7:])
        return open_url(self._http, url, {**headers, **self._headers})

    def _token(self, challenge: str) -> str:
        pairs = (part.strip().partition("=") for part in challenge.split(","))
        fields = {key: value.strip('"') for key, _, value in pairs}
        query = urllib.parse.urlencode(
            {k: v for k, v in fields.items() if k in ("service", "scope")}
        )
        url = f"{fields.get('realm', '')}?{query}"
        answer = read_json(open_url(self._http, url), f"token {url}")
        return str(answer.get("token") or answer.get("access_token") or "")


def _layers(manifest: Any, url: str) -> list[dict[str, Any]]:
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers, list):
        raise VoiceSourceError("BadArtifact", f"{url}: not an image manifest", permanent=True)
    return [layer for layer in layers if isinstance(layer, dict)]
