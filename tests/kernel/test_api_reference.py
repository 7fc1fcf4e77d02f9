"""docs/api-reference.md is what scripts/gen_api_reference.py makes of crds/ now."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    """The script, loaded by path: scripts/ is not a package."""
    spec = importlib.util.spec_from_file_location(
        "gen_api_reference", ROOT / "scripts" / "gen_api_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_current() -> None:
    committed = (ROOT / "docs" / "api-reference.md").read_text()
    assert committed == _generator().render(), "run: python scripts/gen_api_reference.py"
