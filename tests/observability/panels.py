"""The shipped dashboard's panel queries, as Prometheus receives them from Grafana."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILES = Path(__file__).resolve().parents[2] / "charts" / "ttsfleet" / "files"
# What Grafana puts in place of the dashboard's variables before Prometheus sees a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$pool": ".*"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FILES / "dashboard.json").read_text())
    return loaded


def panel_queries() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel.get("targets", ())]


def filled(query: str) -> str:
    """The query with Grafana's variables filled in."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, f"a variable this test does not know: {query}"
    return query
