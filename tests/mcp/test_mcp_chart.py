"""The chart's MCP server: off by default; reads only; the write rule only with the write tool."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from mcp_harness import render_chart

NAMESPACE = "fleet"


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def test_the_mcp_server_is_off_by_default() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render_chart(NAMESPACE, "mcp.enabled=false", only=("deployment.yaml",))
    assert "could not find template" in failed.value.stderr


def test_its_role_reads_only_and_never_deletes() -> None:
    docs = by_kind(render_chart(NAMESPACE, only=("rbac.yaml",)))
    assert "ClusterRole" not in docs
    rules = docs["Role"]["rules"]
    assert {verb for rule in rules for verb in rule["verbs"]} == {"get", "list", "watch"}
    resources = {r for rule in rules for r in rule["resources"]}
    assert resources == {"ttspools", "ttsvoices", "pods", "events", "deployments"}
    assert docs["RoleBinding"]["subjects"][0]["name"] == "t-ttsfleet-mcp"


def test_the_write_tool_adds_only_patch_on_the_scale_subresource() -> None:
    rules = by_kind(render_chart(NAMESPACE, "mcp.writeTool.enabled=true", only=("rbac.yaml",)))[
        "Role"
    ]["rules"]
    writes = [rule for rule in rules if set(rule["verbs"]) - {"get", "list", "watch"}]
    assert writes == [
        {"apiGroups": ["ttsfleet.dev"], "resources": ["ttspools/scale"], "verbs": ["get", "patch"]}
    ]
    assert all("delete" not in rule["verbs"] for rule in rules)


def test_the_deployment_runs_the_command_with_its_access_secret() -> None:
    docs = by_kind(
        render_chart(
            NAMESPACE,
            "mcp.writeTool.enabled=true",
            "jobs.backend=redis",
            "jobs.redisUrl=redis://redis:6379/0",
            only=("deployment.yaml", "service.yaml", "serviceaccount.yaml"),
        )
    )
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["ttsfleet", "mcp"]
    assert {
        "--access=/etc/ttsfleet/mcp/access.yaml",
        f"--namespace={NAMESPACE}",
        "--jobs-backend=redis://redis:6379/0",
        "--enable-scale",
    } <= set(container["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["serviceAccountName"] == "t-ttsfleet-mcp"
    [access] = [v for v in pod["volumes"] if v["name"] == "access"]
    assert access["secret"]["secretName"] == "mcp-access"
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_a_missing_access_secret_is_named() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render_chart(NAMESPACE, "mcp.access.secretName=", only=("deployment.yaml",))
    assert "mcp.access.secretName" in failed.value.stderr


def test_the_schema_refuses_an_unknown_mcp_value() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render_chart(NAMESPACE, "mcp.writeTool.enabeld=true")
    assert "enabeld" in failed.value.stderr
