#!/usr/bin/env bash
# Starts the quickstart fleet, asks it for speech, writes hello.wav, stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${VENV:-.venv}/bin"
log=$(mktemp -t ttsfleet-quickstart.XXXXXX)

"$bin/ttsfleet" up -f examples/quickstart.yaml --log-format text >"$log" 2>&1 &
fleet=$!
trap 'kill -INT $fleet 2>/dev/null; wait $fleet 2>/dev/null || true' EXIT

for _ in $(seq 1 360); do
  grep -q "ttsfleet is listening" "$log" && break
  if ! kill -0 "$fleet" 2>/dev/null; then
    echo "the fleet failed to start:" >&2; tail -20 "$log" >&2; exit 1
  fi
  sleep 0.5
done
grep -q "ttsfleet is listening" "$log" || { echo "the fleet did not start in 180 s" >&2; tail -20 "$log" >&2; exit 1; }
grep -A3 "ttsfleet is listening" "$log"

"$bin/ttsfleet" say "Hello there! This is ttsfleet, speaking from a local fleet." -o hello.wav
