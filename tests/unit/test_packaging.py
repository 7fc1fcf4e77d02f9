"""Every Python package in the tree is in pyproject's explicit list, so a wheel has them all."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    top = ROOT / "ttsfleet"
    return {
        ".".join(("ttsfleet", *Path(folder).relative_to(top).parts))
        for folder, _, files in os.walk(top, followlinks=True)  # through the component links
        if "__init__.py" in files
    }


def test_every_package_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    assert listed == _packages_on_disk()


def test_components_are_linked_into_the_package() -> None:
    for component in ("proto", "inference", "router", "operator"):
        link = ROOT / "ttsfleet" / component
        assert link.is_symlink() and link.resolve() == ROOT / component
