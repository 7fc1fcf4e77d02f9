"""Generate docs/api-reference.md from the CRD schemas in crds/.

The CRDs are the source of truth for the API (their descriptions are what
`kubectl explain` shows), so the reference is derived from them rather than
written twice; tests/unit/test_api_reference.py fails when it is stale.

Usage: python scripts/gen_api_reference.py
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"
OUTPUT = ROOT / "docs" / "api-reference.md"
GROUP = "ttsfleet.dev"
STANDARD_FIELDS = ("apiVersion", "kind", "metadata")

Schema = Mapping[str, Any]


def _cell(text: object) -> str:
    """One Markdown table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _prose(text: str) -> str:
    """Descriptions and rule messages: one line, and <pool> shown, not taken for HTML."""
    return html.escape(" ".join(text.split()), quote=False)


def _type(schema: Schema) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "integer or string"
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return "object (free-form)"
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return "[]" + _type(schema.get("items", {}))
    if kind == "object" and "additionalProperties" in schema:
        return "map[string]" + _type(schema["additionalProperties"])
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return kind


def _range(schema: Schema, low: str, high: str, unit: str) -> list[str]:
    if low in schema and high in schema:
        return [f"{schema[low]} to {schema[high]}{unit}"]
    if low in schema:
        return [f"≥ {schema[low]}{unit}"]
    if high in schema:
        return [f"≤ {schema[high]}{unit}"]
    return []


def _constraints(schema: Schema, required: bool) -> str:
    found = ["required"] if required else []
    if "enum" in schema:
        found.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    found += _range(schema, "minimum", "maximum", "")
    found += _range(schema, "minLength", "maxLength", " characters")
    found += _range(schema, "minItems", "maxItems", " items")
    if "pattern" in schema:
        found.append(f"matches `{schema['pattern']}`")
    if schema.get("x-kubernetes-list-type") == "set":
        found.append("no duplicates")
    if schema.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(schema.get("x-kubernetes-list-map-keys", []))
        found.append(f"unique by {keys}")
    for rule in schema.get("x-kubernetes-validations", []):
        found.append(f"rule: {_prose(rule['message'])}")
    items = schema.get("items")
    if items and "properties" not in items and _constraints(items, False):
        found.append(f"each item: {_constraints(items, False)}")
    return "; ".join(found)


def _default(schema: Schema) -> str:
    if "default" not in schema:
        return ""
    return f"`{json.dumps(schema['default'])}`"


def _fields(schema: Schema, path: str) -> Iterator[tuple[str, Schema, bool]]:
    """Every field under ``schema`` depth-first as (dotted path, schema, required)."""
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, child, name in required
        yield from _fields(child, child_path)
        items = child.get("items", {})
        if items.get("properties"):
            yield from _fields(items, child_path + "[]")


def _fields_table(root: Schema) -> list[str]:
    lines = [
        "| Field | Type | Default | Constraints | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, schema, required in _fields(root, ""):
        if path.split(".")[0].split("[")[0] in STANDARD_FIELDS:
            continue
        cells = (
            f"`{path}`",
            _type(schema),
            _default(schema),
            _constraints(schema, required),
            _prose(schema.get("description", "")),
        )
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return lines


def _printer_columns(version: Schema) -> list[str]:
    lines = [
        "| Column | JSONPath | Shown | Description |",
        "| --- | --- | --- | --- |",
    ]
    for column in version.get("additionalPrinterColumns", []):
        shown = "with `-o wide`" if column.get("priority", 0) else "always"
        description = _prose(column.get("description", ""))
        cells = (column["name"], f"`{column['jsonPath']}`", shown, description)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return lines


def _subresources(version: Schema) -> str:
    subresources = version.get("subresources", {})
    if not subresources:
        return "none"
    described = []
    for name, settings in subresources.items():
        paths = ", ".join(f"{key} `{value}`" for key, value in (settings or {}).items())
        described.append(f"{name} ({paths})" if paths else name)
    return ", ".join(described)


def _crd_section(crd: Schema) -> list[str]:
    spec, names = crd["spec"], crd["spec"]["names"]
    lines: list[str] = []
    for version in spec["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        lines += [
            f"## {names['kind']}",
            "",
            f"- API version: `{spec['group']}/{version['name']}`",
            f"- Resource: `{names['plural']}.{spec['group']}`, {spec['scope'].lower()}",
            "- Short names: " + ", ".join(f"`{n}`" for n in names.get("shortNames", [])),
            "- Categories: " + ", ".join(f"`{c}`" for c in names.get("categories", [])),
            f"- Subresources: {_subresources(version)}",
            "",
            _prose(root.get("description", "")),
            "",
        ]
        rules = root.get("x-kubernetes-validations", [])
        if rules:
            lines += ["Object rules:", ""]
            lines += [f"- {_prose(rule['message'])}" for rule in rules]
            lines.append("")
        lines += ["### Columns (`kubectl get`)", "", *_printer_columns(version), ""]
        lines += ["### Fields", "", *_fields_table(root), ""]
    return lines


def render(crd_dir: Path = CRDS) -> str:
    """The whole reference for every ttsfleet.dev CRD in ``crd_dir``, ordered by kind."""
    crds = [
        document
        for path in sorted(crd_dir.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and document["spec"]["group"] == GROUP
    ]
    crds.sort(key=lambda crd: crd["spec"]["names"]["kind"])
    lines = [
        "# API reference",
        "",
        "<!-- Generated from crds/ by `python scripts/gen_api_reference.py`; do not edit. -->",
        "",
        f"The custom resources of group `{GROUP}`. `kubectl explain <kind>.spec` shows the",
        "same descriptions in a cluster. Defaults are filled in by the API server;",
        "rules are checked by it (OpenAPI and CEL), so a rejected manifest says which",
        "field to change.",
        "",
    ]
    for crd in crds:
        lines += _crd_section(crd)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
