"""`ttsfleet fetch-voice`: an inference pod's init container puts a remote voice in the node cache.

It reads the voice's source (as the TTSVoice spells it, in JSON), fetches it
unless the cache holds it, verifies the sha256, and exits non-zero with the
reason otherwise, so the pod waits rather than serving the wrong voice. S3
keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the pod maps the
source's credentialsSecret into them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from ttsfleet.logs import configure as configure_logging
from ttsfleet.manifests import ManifestError, source_from_manifest
from ttsfleet.voices.errors import VoiceSourceError
from ttsfleet.voices.fetch import Fetcher
from ttsfleet.voices.s3 import S3Credentials

log = logging.getLogger("ttsfleet.fetch-voice")


def s3_credentials_from_env() -> S3Credentials | None:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return S3Credentials(key, secret) if key and secret else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttsfleet fetch-voice", description=__doc__)
    parser.add_argument("--voice", required=True, help="the TTSVoice's name (for messages)")
    parser.add_argument("--source", required=True, help="spec.source of the TTSVoice, as JSON")
    parser.add_argument("--cache", required=True, type=Path, help="the node-local voice cache")
    parser.add_argument("--ca-file", help="CA bundle that verifies HTTPS servers")
    args = parser.parse_args(argv)
    configure_logging("fetch-voice")
    try:
        source = source_from_manifest(json.loads(args.source), f"TTSVoice {args.voice}")
        fetched = Fetcher(args.cache, ca_file=args.ca_file, s3=s3_credentials_from_env()).fetch(
            source
        )
    except (ValueError, ManifestError) as error:
        log.error("voice %s: bad source: %s", args.voice, error)
        return 2
    except VoiceSourceError as error:
        log.error("voice %s: %s: %s", args.voice, error.reason, error.message)
        return 1
    log.info(
        "voice %s: %s %s (sha256 %s, %d bytes)",
        args.voice,
        "found in the cache" if fetched.cached else "fetched",
        fetched.resolved,
        fetched.sha256,
        fetched.size,
    )
    return 0
