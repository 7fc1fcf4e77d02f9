#!/usr/bin/env bash
# Builds promtool and the Prometheus server from the pinned Go module into a
# cache outside the repo (once per machine), for the alert and scrape tests:
#   ${TTSFLEET_CACHE:-~/.cache/ttsfleet}/observability/<version>/bin
# The module's web UI assets are not in it, so this Prometheus serves its
# API (all the tests use) without the UI.
set -euo pipefail
PROMETHEUS_VERSION=v0.316.0  # Prometheus 3.16; its go.mod asks for go 1.26.7

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/goenv.sh
source "$here/../cluster/goenv.sh"
bin="$TTSFLEET_CACHE/observability/$PROMETHEUS_VERSION/bin"
if [[ "${1:-}" == "--print-bin-dir" ]]; then
  echo "$bin"
  exit 0
fi
[[ -x "$bin/promtool" && -x "$bin/prometheus" ]] && exit 0

mkdir -p "$bin"
exec 9>"$bin/../.build.lock"
flock 9
[[ -x "$bin/promtool" && -x "$bin/prometheus" ]] && exit 0
stage=$(mktemp -d "$bin/../stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
echo "building promtool and prometheus $PROMETHEUS_VERSION into $bin" >&2
GOBIN="$stage" go install -p 2 -trimpath -pgo=off -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
mv -f "$stage/promtool" "$stage/prometheus" "$bin/"
