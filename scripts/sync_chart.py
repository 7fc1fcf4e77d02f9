"""Copy the CRDs from crds/ into the Helm chart.

Helm installs CRDs only from a chart's own crds/ folder and cannot read files
outside the chart, so the chart carries copies. crds/ stays the one source of
truth: run this after changing it (tests/unit/test_chart_crds_in_sync.py fails
until you do).

Usage: python scripts/sync_chart_crds.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "ttsfleet" / "crds"


def sync() -> list[str]:
    """Make the chart's crds/ an exact copy of crds/; return what changed."""
    CHART_CRDS.mkdir(parents=True, exist_ok=True)
    wanted = {path.name: path for path in SOURCE.glob("*.yaml")}
    changed = []
    for stale in CHART_CRDS.iterdir():
        if stale.name not in wanted:
            stale.unlink()
            changed.append(f"removed {stale.name}")
    for name, source in sorted(wanted.items()):
        target = CHART_CRDS / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
            changed.append(f"copied {name}")
    return changed


def main() -> int:
    for line in sync() or ["the chart's CRDs were already in sync"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
