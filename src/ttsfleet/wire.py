"""Names on the wire that pods, the router and clients must agree on: metadata keys, RPC paths.

The router forwards bytes without generated stubs, so it names methods by
path; pods, the operator and clients use the stubs. Both spellings come from
the same descriptors here, so a renamed service cannot split them.
"""

from __future__ import annotations

import re
import uuid

import grpc

from ttsfleet.errors import TTSError
from ttsfleet.proto import tts_pb2, ttsfleet_v1_pb2

# Metadata (gRPC headers and trailers).
REQUEST_ID_KEY = "x-request-id"
SAMPLE_RATE_KEY = "x-tts-sample-rate"
# In-band load: every pod response carries it, so the router learns a pod's
# load from the traffic it already carries.
QUEUE_DEPTH_KEY = "x-ttsfleet-queue-depth"
IN_FLIGHT_KEY = "x-ttsfleet-in-flight"

SEED_SERVICE = tts_pb2.DESCRIPTOR.services_by_name["TTSService"].full_name
SYNTHESIZER_SERVICE = ttsfleet_v1_pb2.DESCRIPTOR.services_by_name["Synthesizer"].full_name
LOAD_REPORTER_SERVICE = ttsfleet_v1_pb2.DESCRIPTOR.services_by_name["LoadReporter"].full_name
# Both serve Synthesize and StreamSynthesize with the same messages.
SYNTHESIS_SERVICES = (SEED_SERVICE, SYNTHESIZER_SERVICE)
LIST_VOICES = f"/{SYNTHESIZER_SERVICE}/ListVoices"
WATCH_LOAD = f"/{LOAD_REPORTER_SERVICE}/WatchLoad"

MAX_REQUEST_ID_LENGTH = 128
_REQUEST_ID = re.compile(r"^[\x21-\x7e]+$")


def request_id(given: str, header: str | None) -> str:
    """The caller's request id (field first, then x-request-id metadata), or a fresh one."""
    value = given or header or ""
    if not value:
        return uuid.uuid4().hex
    if len(value) > MAX_REQUEST_ID_LENGTH or not _REQUEST_ID.match(value):
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request_id must be 1-{MAX_REQUEST_ID_LENGTH} printable ASCII characters without spaces",
        )
    return value


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that presents `token` to a router that requires one (none for "")."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def header(context: grpc.aio.ServicerContext, key: str) -> str | None:
    """One invocation metadata value as text, or None."""
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None
