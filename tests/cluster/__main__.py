"""Run a test control plane until Ctrl-C: ``cd tests && python -m cluster``.

Prints the kubeconfig path and the commands to point a shell at it; with
``--measure`` it also prints start-up time and the components' memory.
"""

import argparse
import signal
import sys
import time
from pathlib import Path

from cluster import binaries
from cluster.control_plane import ControlPlane


def rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def report_measurements(plane: ControlPlane, startup_seconds: float) -> None:
    """Start-up time and per-component RSS, after a short settling pause."""
    time.sleep(10)
    rss = {name: rss_kib(pid) for name, pid in plane.pids().items()}
    print(f"start-up: {startup_seconds:.1f} s")
    for name, kib in rss.items():
        print(f"  {name:<24} {kib / 1024:7.0f} MiB")
    print(f"  {'total':<24} {sum(rss.values()) / 1024:7.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__)
    parser.add_argument("--gpu-nodes", type=int, default=2)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--measure", action="store_true", help="print start-up time and memory")
    parser.add_argument("--keep", action="store_true", help="keep logs and data after exit")
    args = parser.parse_args()

    # SIGTERM takes the same clean path as Ctrl-C, and so does SIGINT even
    # when started in the background (where the shell ignores it).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    binaries.locate()  # build first, so start-up time below is a warm start
    started = time.monotonic()
    with ControlPlane(
        gpu_nodes=args.gpu_nodes, gpus_per_node=args.gpus_per_node, keep_dir=args.keep
    ) as plane:
        startup = time.monotonic() - started
        kubectl = binaries.cache_bin_dir() / "kubectl"
        print(plane.describe())
        print(f"\nexport KUBECONFIG={plane.kubeconfig}\nalias kubectl={kubectl}\n", flush=True)
        if args.measure:
            report_measurements(plane, startup)
        kept = f"keeps {plane.dir}" if args.keep else "removes its files"
        print(f"running; Ctrl-C stops it and {kept}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("\nstopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
