"""Copy what the Helm chart must carry verbatim: the CRDs and the operator's and router's RBAC.

Helm installs CRDs only from a chart's own crds/ folder and cannot read files
outside the chart, so the chart carries copies of crds/*.yaml and of
deploy/rbac/operator.yaml, router.yaml and gate.yaml (its templates take the rules from
those copies). The originals stay the one source of truth: run this after changing
them (tests/unit/test_chart_crds_in_sync.py fails until you do).

Usage: python scripts/sync_chart.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "ttsfleet"
CRDS = ROOT / "crds"
CHART_CRDS = CHART / "crds"
RBAC = ("operator", "router", "gate")


def copies() -> dict[Path, Path]:
    """Each file the chart carries, mapped to its original."""
    wanted = {CHART_CRDS / path.name: path for path in CRDS.glob("*.yaml")}
    for component in RBAC:
        wanted[CHART / "files" / f"{component}-rbac.yaml"] = (
            ROOT / "deploy" / "rbac" / f"{component}.yaml"
        )
    return wanted


def sync() -> list[str]:
    """Make every copy identical to its original, drop stale CRDs; return what changed."""
    wanted = copies()
    changed = []
    for stale in sorted(CHART_CRDS.glob("*")):
        if stale not in wanted:
            stale.unlink()
            changed.append(f"removed {stale.relative_to(ROOT)}")
    for target, source in sorted(wanted.items()):
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            changed.append(f"copied {source.relative_to(ROOT)} to {target.relative_to(ROOT)}")
    return changed


def main() -> int:
    for line in sync() or ["the chart's copies were already in sync"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
