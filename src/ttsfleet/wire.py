"""Names on the wire that pods, the router and clients must agree on: metadata keys, RPC paths.

The router forwards bytes without generated stubs, so it names methods by
path; pods, the operator and clients use the stubs. Both spellings come from
the same descriptors here, so a renamed service cannot split them.
"""

from __future__ import annotations

import argparse
import enum
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

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
# A request's priority class ("interactive" or "batch"), for callers that cannot
# set the field; the router passes the class it settled on to the pod this way.
PRIORITY_KEY = "x-ttsfleet-priority"
# Who the caller is, for fair shares within a class: the gateway sends the API
# key's tenant; the router passes it (or its own name for the caller) to the pod.
TENANT_KEY = "x-ttsfleet-tenant"
# Trailing metadata of a refusal for load: seconds after which a retry may succeed.
RETRY_AFTER_KEY = "retry-after"

# The health-check service a pod's liveness probe asks: NOT_SERVING once its
# engine has had work and finished no step for a while (a hung engine), where
# "" only says the pod takes requests.
LIVENESS_SERVICE = "liveness"

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


class Priority(enum.StrEnum):
    """A request's class: who waits on it. The value is its metadata and metric label."""

    INTERACTIVE = "interactive"
    BATCH = "batch"

    @property
    def field(self) -> tts_pb2.Priority:
        """The TTSRequest.priority value of this class."""
        if self is Priority.BATCH:
            return tts_pb2.PRIORITY_BATCH
        return tts_pb2.PRIORITY_INTERACTIVE


def priority(given: int, header: str | None) -> Priority:
    """The request's class: the field first, then x-ttsfleet-priority metadata, else interactive."""
    if given == tts_pb2.PRIORITY_BATCH:
        return Priority.BATCH
    if given not in (tts_pb2.PRIORITY_UNSPECIFIED, tts_pb2.PRIORITY_INTERACTIVE):
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"priority {given} is not a Priority (1: interactive, 2: batch)",
            field="priority",
        )
    if given or not header:
        return Priority.INTERACTIVE
    try:
        return Priority(header.strip().lower())
    except ValueError:
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{PRIORITY_KEY} {header!r} is not one of: interactive, batch",
            field=PRIORITY_KEY,
        ) from None


def tenant(header: str | None) -> str:
    """The caller's tenant from x-ttsfleet-tenant metadata ("" when none), checked like an id."""
    if header and (len(header) > MAX_REQUEST_ID_LENGTH or not _REQUEST_ID.match(header)):
        raise TTSError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{TENANT_KEY} must be 1-{MAX_REQUEST_ID_LENGTH} printable ASCII characters "
            "without spaces",
            field=TENANT_KEY,
        )
    return header or ""


def add_router_access_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every client of the router shares: its token and, for TLS, its CA."""
    add = parser.add_argument
    add("--token", default="", help="bearer token, if the router requires one")
    add("--token-file", type=Path, help="read the bearer token from this file (a mounted Secret)")
    add(
        "--router-ca",
        type=Path,
        help="PEM CA certificate: speak TLS to the router and trust its certificate by this CA",
    )


@dataclass(frozen=True)
class RouterAccess:
    """What a client presents to the router: a bearer token ("" for none), TLS credentials."""

    token: str
    credentials: grpc.ChannelCredentials | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RouterAccess:
        token = (
            args.token_file.read_text(encoding="utf-8").strip() if args.token_file else args.token
        )
        ca = args.router_ca.read_bytes() if args.router_ca else None
        return cls(token, grpc.ssl_channel_credentials(ca) if ca else None)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that presents `token` to a router that requires one (none for "")."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def header(context: grpc.aio.ServicerContext, key: str) -> str | None:
    """One invocation metadata value as text, or None."""
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None
