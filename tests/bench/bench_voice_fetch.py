"""What a pod's init container pays for a remote voice: first fetch on a node vs the node cache.

Run: python tests/bench/bench_voice_fetch.py [--rounds 3]

The real voice `joe` (its .onnx and .onnx.json) from a Hugging Face-style
HTTPS server on loopback with a test CA, through `Fetcher` exactly as
`ttsfleet fetch-voice` uses it: a cold fetch (download, sha256, config
check, atomic rename into a fresh cache) and a warm one (a second pod on the
same node: the cache entry, no request). The table shows both and the
requests the server saw. Loopback only: a real network adds its own transfer
time to the cold column, never to the warm one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
import voice_servers  # noqa: E402
from voice_servers import JOE_CONFIG, JOE_MODEL, JOE_SHA256  # noqa: E402

from ttsfleet.manifests import source_from_manifest  # noqa: E402
from ttsfleet.voices.fetch import Fetcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as work, voice_servers.hub(Path(work)) as hub:
        hub.publish(
            "rhasspy/joe", "v1", "en/joe.onnx", JOE_MODEL.read_bytes(), JOE_CONFIG.read_bytes()
        )
        hf = {"endpoint": hub.url, "repo": "rhasspy/joe", "revision": "v1", "file": "en/joe.onnx"}
        source = source_from_manifest({"huggingface": hf, "sha256": JOE_SHA256}, "bench")
        cold, warm, cold_requests, warm_requests = [], [], 0, 0
        for round_ in range(rounds):
            cache = Path(work) / f"node-{round_}"
            for times in (cold, warm):
                before = len(hub.requests)
                started = time.perf_counter()
                Fetcher(cache, ca_file=str(hub.ca_file)).fetch(source)
                times.append(time.perf_counter() - started)
                if times is cold:
                    cold_requests += len(hub.requests) - before
                else:
                    warm_requests += len(hub.requests) - before
    size_mb = JOE_MODEL.stat().st_size / 1e6
    print(f"voice joe: {size_mb:.1f} MB model, {rounds} rounds, HTTPS on loopback")
    print(f"{'fetch':<28}{'median s':>10}{'max s':>10}{'requests':>10}")
    for name, times, requests in (
        ("cold (first pod on a node)", cold, cold_requests),
        ("warm (node cache)", warm, warm_requests),
    ):
        print(f"{name:<28}{statistics.median(times):>10.3f}{max(times):>10.3f}{requests:>10}")


if __name__ == "__main__":
    main()
