"""Find the control-plane binaries, building them on first use.

``KUBEBUILDER_ASSETS`` (envtest's directory) wins for the binaries envtest
ships; everything else comes from the cache that ``build.sh`` fills.
"""

import os
import subprocess
from pathlib import Path

BUILD_SCRIPT = Path(__file__).with_name("build.sh")
ENVTEST_BINARIES = ("kube-apiserver", "etcd", "kubectl")
CACHE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)


def cache_bin_dir() -> Path:
    """The versioned cache directory, as build.sh computes it."""
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-bin-dir"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def ensure_built() -> Path:
    """Run build.sh (a no-op when the cache is complete); return the bin dir.

    A cold build takes tens of minutes; its progress goes to the inherited
    stderr (pytest shows it for a failed fixture).
    """
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)
    return cache_bin_dir()


def locate() -> dict[str, Path]:
    """Map each binary name to the file to run."""
    bin_dir = cache_bin_dir()
    if not all((bin_dir / name).is_file() for name in CACHE_BINARIES):
        bin_dir = ensure_built()
    found = {name: bin_dir / name for name in CACHE_BINARIES}
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        for name in ENVTEST_BINARIES:
            candidate = Path(assets) / name
            if candidate.is_file():
                found[name] = candidate
    return found
