"""The package's shape: a src layout without links, and dependencies that point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "ttsfleet"
COMPONENTS = (
    "proto", "inference", "router", "operator", "jobs", "gateway", "local", "mcp", "gate",
)  # fmt: skip
# Beyond the kernel, what each component may import (DESIGN.md, "Layout"): the
# gateway is the front door of jobs; the local fleet composes the others as a
# cluster would, through their public entry points (and reads its pods' load
# reports through the contract, as the operator does); the MCP server reads job
# records through the jobs backend's public interface.
ALLOWED = {
    "proto": set(),
    "inference": {"proto"},
    "router": {"proto"},
    "operator": {"proto"},
    "jobs": {"proto"},
    "gateway": {"proto", "jobs"},
    "local": {"proto", "router", "gateway"},
    "mcp": {"proto", "jobs"},
    "gate": {"proto"},
}


def test_no_symlink_is_tracked() -> None:
    listing = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert [line for line in listing.splitlines() if line.startswith("120000")] == []


def test_every_component_is_a_real_package_folder() -> None:
    for component in COMPONENTS:
        folder = PACKAGE / component
        assert folder.is_dir() and not folder.is_symlink()
        assert (folder / "__init__.py").is_file()


def test_the_repository_root_on_sys_path_shadows_nothing() -> None:
    """`python` run from the root (the root first on sys.path) sees the stdlib's operator."""
    script = (
        "import sys; sys.path.insert(0, '.'); import operator, ttsfleet.operator; "
        "print(operator.eq(1, 1), ttsfleet.operator.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "ttsfleet.operator"]


def _imported_components(path: Path) -> set[str]:
    """The ttsfleet components a module imports (the kernel's own modules are not components)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ttsfleet" and len(parts) > 1 and parts[1] in COMPONENTS:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("component", COMPONENTS)
def test_components_import_the_kernel_not_each_other(component: str) -> None:
    strays = {
        str(path.relative_to(PACKAGE)): sorted(imported - ALLOWED[component] - {component})
        for path in (PACKAGE / component).rglob("*.py")
        if (imported := _imported_components(path)) - ALLOWED[component] - {component}
    }
    assert strays == {}


def test_the_kernel_imports_no_component_but_the_contracts() -> None:
    """cli.py dispatches by module name (importlib), so no kernel module imports a component."""
    strays = {
        path.name: sorted(imported - {"proto"})
        for path in PACKAGE.glob("*.py")
        if (imported := _imported_components(path)) - {"proto"}
    }
    assert strays == {}
