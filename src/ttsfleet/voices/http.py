"""HTTP(S) reads with the source's timeouts and CA: URLs, Hugging Face files, registries."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3

from ttsfleet.manifests import FetchLimits
from ttsfleet.voices.errors import VoiceSourceError

CHUNK_BYTES = 1 << 20
MAX_DOCUMENT_BYTES = 4 << 20  # configs and manifests: small by nature
# Worth another attempt: the server or a proxy was briefly unable.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def pool_manager(limits: FetchLimits, ca_file: str | None) -> urllib3.PoolManager:
    """One client per fetch: connect/read timeouts, a few retries, and the given CA if any."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=limits.connect_seconds, read=limits.read_seconds),
        retries=urllib3.Retry(
            total=3,
            backoff_factor=0.5,
            status_forcelist=sorted(TRANSIENT_STATUSES),
            redirect=5,
            raise_on_status=False,  # the last answer's status goes into the error message
        ),
        ca_certs=ca_file,
    )


def open_url(
    http: urllib3.PoolManager,
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    allow: frozenset[int] = frozenset(),
) -> urllib3.BaseHTTPResponse:
    """A streaming GET; an error status not in `allow` is a VoiceSourceError naming the URL."""
    try:
        response = http.request("GET", url, headers=dict(headers or {}), preload_content=False)
    except urllib3.exceptions.HTTPError as error:
        raise VoiceSourceError("Unreachable", f"GET {url}: {error}", permanent=False) from error
    if response.status >= 400 and response.status not in allow:
        response.release_conn()
        raise VoiceSourceError(
            "NotFound" if response.status == 404 else "HTTPError",
            f"GET {url}: HTTP {response.status} {response.reason or ''}".rstrip(),
            permanent=response.status not in TRANSIENT_STATUSES,
        )
    return response


def chunks(
    response: urllib3.BaseHTTPResponse, what: str, deadline: float | None = None
) -> Iterator[bytes]:
    """The body in chunks; a stalled or dropped connection is a transient error.

    With a `deadline` (time.monotonic()), a watchdog shuts the socket when it
    passes, so even a server that drips a byte within every read timeout
    cannot hold the download past it.
    """
    watchdog = None
    if deadline is not None:
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (response,))
        watchdog.daemon = True
        watchdog.start()
    try:
        yield from response.stream(CHUNK_BYTES)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        if not _passed(deadline):
            raise VoiceSourceError("Unreachable", f"{what}: {error}", permanent=False) from error
    finally:
        if watchdog is not None:
            watchdog.cancel()
        response.release_conn()
    if _passed(deadline):  # the body may have been cut short
        raise VoiceSourceError(
            "Timeout", f"{what}: the download did not finish in time", permanent=False
        )


def _passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _cut(response: urllib3.BaseHTTPResponse) -> None:
    with contextlib.suppress(ValueError, RuntimeError, OSError):
        response.shutdown()


def read_json(response: urllib3.BaseHTTPResponse, what: str) -> Any:
    """A small JSON document, refused when it is not one."""
    body = b""
    for chunk in chunks(response, what):
        body += chunk
        if len(body) > MAX_DOCUMENT_BYTES:
            raise VoiceSourceError(
                "TooLarge", f"{what} is over {MAX_DOCUMENT_BYTES} bytes", permanent=True
            )
    try:
        return json.loads(body)
    except ValueError as error:
        raise VoiceSourceError(
            "BadDocument", f"{what} is not JSON: {error}", permanent=True
        ) from error
