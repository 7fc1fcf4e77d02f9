"""The dashboard and the alerts name only metrics that the code really exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from observability.panels import FILES, dashboard, filled, panel_queries
from observability.tools import locate
from prometheus_client import CollectorRegistry

from ttsfleet.inference.metrics import InferenceMetrics
from ttsfleet.router.metrics import RouterMetrics

NAME = re.compile(r"\bttsfleet_[a-z_]+\b")
# Each metric type's sample names, as the exposition format writes them.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


def exported(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]
    }


def code_metrics() -> set[str]:
    return exported(RouterMetrics().registry) | exported(InferenceMetrics().registry)


def dashboard_queries() -> list[str]:
    return panel_queries() + [
        v["query"]["query"]
        for v in dashboard()["templating"]["list"]
        if "query" in v and isinstance(v["query"], dict)
    ]


def alert_queries() -> list[str]:
    groups = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_every_dashboard_panel_names_exported_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) > 10
    named = {name for query in queries for name in NAME.findall(query)}
    assert named - code_metrics() == set()


def test_every_alert_names_exported_or_recorded_metrics() -> None:
    recorded = {
        rule["record"]
        for group in yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    named = {name for query in alert_queries() for name in NAME.findall(query)}
    assert named - code_metrics() - recorded == set()


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query (as a recording rule) once Grafana's variables are filled."""
    rules = tmp_path / "panels.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": [
        {"record": f"ttsfleet:panel_{i}", "expr": filled(query)}
        for i, query in enumerate(panel_queries())
    ]}]}))  # fmt: skip
    done = subprocess.run(
        [str(locate()["promtool"]), "check", "rules", str(rules)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(panel_queries())} rules found" in done.stdout


def test_panels_have_unique_ids() -> None:
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_the_check_catches_a_misspelt_metric() -> None:
    """The check itself: a name the code does not export is reported."""
    assert NAME.findall("rate(ttsfleet_router_requets_total[5m])")[0] not in code_metrics()
