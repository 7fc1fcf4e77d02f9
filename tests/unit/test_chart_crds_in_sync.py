"""The Helm chart installs exactly the CRDs in crds/, byte for byte."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "ttsfleet" / "crds"
FIX = "run: python scripts/sync_chart_crds.py"


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_the_chart_carries_every_crd_and_nothing_else() -> None:
    assert sorted(_files(CHART_CRDS)) == sorted(_files(SOURCE)), FIX


def test_every_copy_is_identical() -> None:
    chart = _files(CHART_CRDS)
    different = [name for name, text in _files(SOURCE).items() if chart.get(name) != text]
    assert different == [], f"{', '.join(different)} differ from crds/; {FIX}"
