"""Who is calling and which tools they may call: bearer tokens and OIDC JWTs mapped to identities.

The mapping lives in one YAML file (a mounted Secret in a cluster) that is
re-read whenever it changes, so granting or revoking a tool takes no
restart. Static tokens are stored as SHA-256 digests, so the file itself
holds no usable credential. A file that fails to parse is logged and the
last good mapping stays in force: a typo must not open or close the door.

    identities:
      - name: alice
        tokens: ["sha256:<hex digest of the token>"]
        subjects: ["alice@example.com"]     # OIDC: the value of oidc.claim
        tools: [fleet_overview, pool_load]  # or ["*"]
    oidc:                                   # optional
      issuer: https://idp.example.com
      audience: ttsfleet-mcp
      jwksFile: jwks.json                   # relative to this file
      claim: sub
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import yaml
from mcp.server.auth.provider import AccessToken

from ttsfleet.reloading import ReloadingFile

logger = logging.getLogger(__name__)

ALL_TOOLS = "*"
# JWTs are accepted only with asymmetric signatures: a shared secret would
# have to live beside the grants.
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")


class AccessError(ValueError):
    """An access file that cannot be used, with a message naming the field."""


@dataclass(frozen=True)
class Identity:
    """A caller, by the name the audit records, and the tools granted to it."""

    name: str
    tools: frozenset[str]

    def may(self, tool: str) -> bool:
        return ALL_TOOLS in self.tools or tool in self.tools


@dataclass(frozen=True)
class Oidc:
    """Which JWTs are accepted: issuer, audience, the issuer's public keys, the naming claim."""

    issuer: str
    audience: str
    keys: jwt.PyJWKSet
    claim: str = "sub"


@dataclass(frozen=True)
class Grants:
    """One parsed access file."""

    by_digest: Mapping[str, Identity] = field(default_factory=dict)
    by_subject: Mapping[str, Identity] = field(default_factory=dict)
    oidc: Oidc | None = None


def token_digest(token: str) -> str:
    """How a static token is written in the access file."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def parse_grants(data: Any, base: Path) -> Grants:
    """Grants from the file's YAML; relative paths are resolved against ``base``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("identities"), list):
        raise AccessError("access file: identities must be a list")
    by_digest: dict[str, Identity] = {}
    by_subject: dict[str, Identity] = {}
    for entry in data["identities"]:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not name:
            raise AccessError("access file: every identity needs a name")
        identity = Identity(str(name), frozenset(str(t) for t in entry.get("tools") or ()))
        for digest in entry.get("tokens") or ():
            if not str(digest).startswith("sha256:"):
                raise AccessError(f"access file: identity {name}: tokens are sha256:<hex> digests")
            by_digest[str(digest)] = identity
        for subject in entry.get("subjects") or ():
            by_subject[str(subject)] = identity
    return Grants(by_digest, by_subject, _oidc(data.get("oidc"), base))


def _oidc(section: Any, base: Path) -> Oidc | None:
    if not section:
        return None
    missing = [key for key in ("issuer", "audience", "jwksFile") if not section.get(key)]
    if missing:
        raise AccessError(f"access file: oidc needs {', '.join(missing)}")
    jwks = json.loads((base / section["jwksFile"]).read_text(encoding="utf-8"))
    return Oidc(
        issuer=str(section["issuer"]),
        audience=str(section["audience"]),
        keys=jwt.PyJWKSet.from_dict(jwks),
        claim=str(section.get("claim", "sub")),
    )


class AccessFile:
    """The SDK's token verifier over an access file that is re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = ReloadingFile(path, self._parse)
        except OSError as error:
            raise AccessError(f"{path}: cannot be read ({error})") from error

    def _parse(self, text: str) -> Grants:
        """The grants the text says; a broken edit is a ValueError, so the last grants stay."""
        try:
            return parse_grants(yaml.safe_load(text), self.path.parent)
        except (yaml.YAMLError, jwt.PyJWTError, OSError) as error:
            raise AccessError(f"access file {self.path}: {error}") from error

    def current(self) -> Grants:
        """The grants as the file says now (the last good ones if it no longer parses)."""
        return self._file.current()

    def identify(self, token: str) -> Identity | None:
        """The identity a bearer token (static or JWT) stands for, or None."""
        grants = self.current()
        known = grants.by_digest.get(token_digest(token))
        if known is not None or grants.oidc is None or token.count(".") != 2:
            return known
        oidc = grants.oidc
        try:
            key = oidc.keys[jwt.get_unverified_header(token).get("kid", "")]
            claims = jwt.decode(
                token,
                key,
                algorithms=list(JWT_ALGORITHMS),
                audience=oidc.audience,
                issuer=oidc.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, KeyError) as error:
            logger.info("JWT refused: %s", error)
            return None
        return grants.by_subject.get(str(claims.get(oidc.claim, "")))

    async def verify_token(self, token: str) -> AccessToken | None:
        identity = self.identify(token)
        if identity is None:
            return None
        return AccessToken(
            token=token,
            client_id=identity.name,
            subject=identity.name,
            scopes=sorted(identity.tools),
        )
