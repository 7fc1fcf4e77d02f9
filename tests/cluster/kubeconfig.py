"""Self-contained kubeconfig files (credentials embedded, not referenced).

Written as JSON, which every YAML reader (kubectl, the Python client)
accepts, so no YAML library is needed.
"""

import base64
import json
from pathlib import Path

from cluster.pki import KeyPair


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    user: str,
    client: KeyPair | None = None,
    token: str | None = None,
) -> Path:
    """Write a kubeconfig for one identity, by client certificate or token."""
    if (client is None) == (token is None):
        raise ValueError("give exactly one of client or token")
    credentials: dict[str, str]
    if client is not None:
        credentials = {
            "client-certificate-data": _b64(client.cert_pem),
            "client-key-data": _b64(client.key_pem),
        }
    else:
        credentials = {"token": str(token)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ttsfleet-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": "ttsfleet-test", "context": {"cluster": "ttsfleet-test", "user": user}}
        ],
        "current-context": "ttsfleet-test",
        "preferences": {},
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2))
    return path
