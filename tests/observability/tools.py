"""promtool, the Prometheus server and Jaeger, built from their Go modules by build.sh and cached."""

from __future__ import annotations

import subprocess
from pathlib import Path

BUILD = Path(__file__).resolve().parent / "build.sh"


def locate() -> dict[str, Path]:
    """The binaries, built first if this machine has none yet (minutes, once)."""
    subprocess.run(["bash", str(BUILD)], check=True, timeout=3600)
    folder = Path(
        subprocess.run(
            ["bash", str(BUILD), "--print-bin-dir"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    return {name: folder / name for name in ("promtool", "prometheus", "jaeger")}
