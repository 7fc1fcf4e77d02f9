"""Every metric the router and the pods register has a row in its docs table, and no row is stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ttsfleet.inference.metrics import InferenceMetrics
from ttsfleet.router.metrics import RouterMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROW = re.compile(r"^\| `(ttsfleet_[a-z_]+)` \|", re.MULTILINE)


def registered(registry: CollectorRegistry) -> set[str]:
    """Each metric as a query names it: a counter with its _total, others by their family name."""
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
    }


@pytest.mark.parametrize(
    ("registry", "doc", "prefix"),
    [
        (RouterMetrics().registry, "router.md", "ttsfleet_router_"),
        (InferenceMetrics().registry, "operations.md", "ttsfleet_inference_"),
    ],
    ids=["router", "pod"],
)
def test_the_metrics_table_lists_every_registered_metric(
    registry: CollectorRegistry, doc: str, prefix: str
) -> None:
    rows = [name for name in ROW.findall((DOCS / doc).read_text()) if name.startswith(prefix)]
    assert len(rows) == len(set(rows)), "a metric listed twice"
    assert set(rows) == registered(registry)
