"""Mutual TLS between inference pods and their callers (the router, the operator), from PEM files.

One Secret per fleet (cert-manager writes `tls.crt`, `tls.key`, `ca.crt`) serves
both ends: pods present the certificate and require a client certificate
signed by the CA; callers present the same kind of certificate and check the
pod's against the CA under a fixed server name (pods are dialled by IP, which
no certificate can name ahead of time). Renewals need no restart: a pod's
next handshake uses the new files, and callers reconnect when theirs change.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ttsfleet.reloading import Version, file_version

# The name pods' certificates carry (a DNS SAN) and callers check.
DEFAULT_SERVER_NAME = "ttsfleet-inference"


@dataclass(frozen=True)
class TLSFiles:
    """A certificate, its key, and the CA that signs the other end's certificates."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def from_flags(cls, cert: Path | None, key: Path | None, ca: Path | None) -> TLSFiles | None:
        """All three or none, so a half-configured side fails at start, not at the first call."""
        given = [path for path in (cert, key, ca) if path]
        if not given:
            return None
        if cert is None or key is None or ca is None:
            raise ValueError("mutual TLS needs a certificate, its key and a CA file")
        return cls(cert, key, ca)

    def version(self) -> tuple[Version, ...]:
        """What changes when any of the files is replaced."""
        return tuple(file_version(path) for path in (self.cert, self.key, self.ca))

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.cert.read_bytes(), self.key.read_bytes(), self.ca.read_bytes()


def add_client_flags(group: argparse._ActionsContainer) -> None:
    """`--pod-tls-*`: the flags of every caller of pods (the router, the canary gate)."""
    group.add_argument("--pod-tls-cert", type=Path, help="PEM certificate presented to pods")
    group.add_argument("--pod-tls-key", type=Path, help="its private key")
    group.add_argument("--pod-tls-ca", type=Path, help="CA that signs the pods' certificates")
    group.add_argument(
        "--pod-tls-server-name",
        default=DEFAULT_SERVER_NAME,
        help="name the pods' certificates carry (default: %(default)s)",
    )


def server_credentials(files: TLSFiles) -> grpc.ServerCredentials:
    """Credentials that require a client certificate; each handshake picks up renewed files."""

    def configuration() -> grpc.ServerCertificateConfiguration:
        cert, key, ca = files.read()
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    seen = [files.version()]
    initial = configuration()

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            version = files.version()
            if version == seen[0]:
                return None
            renewed = configuration()
        except OSError:  # mid-swap: keep the current files until the next handshake
            return None
        seen[0] = version
        return renewed

    return grpc.dynamic_ssl_server_credentials(initial, fetch, require_client_authentication=True)


class ClientTLS:
    """A caller's credentials towards pods; `changed()` says when to reconnect."""

    def __init__(self, files: TLSFiles, server_name: str = DEFAULT_SERVER_NAME) -> None:
        self.files = files
        self.options = (("grpc.ssl_target_name_override", server_name),)
        self._version = files.version()
        self._credentials = self._load()

    def _load(self) -> grpc.ChannelCredentials:
        cert, key, ca = self.files.read()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    @property
    def credentials(self) -> grpc.ChannelCredentials:
        return self._credentials

    def changed(self) -> bool:
        """Re-reads the files if they changed; True when new channels should be made."""
        try:
            version = self.files.version()
            if version == self._version:
                return False
            self._credentials = self._load()
        except OSError:
            return False
        self._version = version
        return True


def channel(address: str, tls: ClientTLS | None, interceptors: list[Any]) -> grpc.aio.Channel:
    """A channel to a pod: mutual TLS when configured, plaintext otherwise."""
    if tls is None:
        return grpc.aio.insecure_channel(address, interceptors=interceptors)
    return grpc.aio.secure_channel(
        address,
        tls.credentials,
        tls.options,
        interceptors=interceptors,
    )
