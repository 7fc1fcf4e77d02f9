"""The Helm chart carries exactly the CRDs in crds/ and the components' RBAC, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ttsfleet"
FIX = "run: python scripts/sync_chart.py"


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_the_chart_carries_every_crd_and_nothing_else() -> None:
    assert sorted(_files(CHART / "crds")) == sorted(_files(ROOT / "crds")), FIX


def test_every_crd_copy_is_identical() -> None:
    chart = _files(CHART / "crds")
    different = [name for name, text in _files(ROOT / "crds").items() if chart.get(name) != text]
    assert different == [], f"{', '.join(different)} differ from crds/; {FIX}"


@pytest.mark.parametrize("component", ["operator", "router"])
def test_the_rbac_copies_are_identical(component: str) -> None:
    """The chart's rules for each component come from a copy of deploy/rbac/<component>.yaml."""
    original = (ROOT / "deploy" / "rbac" / f"{component}.yaml").read_bytes()
    assert (CHART / "files" / f"{component}-rbac.yaml").read_bytes() == original, FIX
