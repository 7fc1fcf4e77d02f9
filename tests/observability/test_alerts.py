"""The shipped alerts: valid rules, and each fires on trouble and stays quiet otherwise (promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from observability.tools import locate

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parents[1] / "charts" / "ttsfleet" / "files" / "alerts.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(locate()["promtool"]), *args], capture_output=True, text=True, timeout=120, cwd=HERE
    )


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_when_it_should_and_not_otherwise() -> None:
    done = promtool("test", "rules", "alerts_test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_exercised_and_documented() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    cases = (HERE / "alerts_test.yaml").read_text()
    assert {a for a in alerts if f"alertname: {a}" not in cases} == set()
    runbook = (HERE.parents[1] / "docs" / "operations.md").read_text()
    assert {a for a in alerts if f"### {a}" not in runbook} == set()
