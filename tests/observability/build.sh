#!/usr/bin/env bash
# Builds promtool, the Prometheus server and Jaeger (an OTLP receiver with a
# query API) from their pinned Go modules into a cache outside the repo (once
# per machine), for the alert, scrape and trace tests:
#   ${TTSFLEET_CACHE:-~/.cache/ttsfleet}/observability/<versions>/bin
# The Prometheus module carries no web UI assets, so this Prometheus serves
# its API (all the tests use) without the UI.
set -euo pipefail
PROMETHEUS_VERSION=v0.316.0  # Prometheus 3.16; its go.mod asks for go 1.26.7
JAEGER_VERSION=v1.76.0       # the module of Jaeger v2's `jaeger` command

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/goenv.sh
source "$here/../cluster/goenv.sh"
bin="$TTSFLEET_CACHE/observability/prometheus-$PROMETHEUS_VERSION-jaeger-$JAEGER_VERSION/bin"
binaries=(promtool prometheus jaeger)
complete() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
if [[ "${1:-}" == "--print-bin-dir" ]]; then
  echo "$bin"
  exit 0
fi
complete && exit 0

mkdir -p "$bin"
exec 9>"$bin/../.build.lock"
flock 9
complete && exit 0
stage=$(mktemp -d "$bin/../stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
echo "building promtool and prometheus $PROMETHEUS_VERSION into $bin" >&2
GOBIN="$stage" go install -p 2 -trimpath -pgo=off -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
# Jaeger's go.mod has replace directives, so `go install pkg@version` refuses
# it: build it from a small consumer module instead (its replaces are moot there).
module="$stage/jaeger-module"
mkdir -p "$module"
printf 'module ttsfleet.dev/testtools/jaeger\n\ngo 1.25.0\n' >"$module/go.mod"
echo "building jaeger $JAEGER_VERSION into $bin" >&2
(cd "$module" && go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" \
  && go build -p 2 -trimpath -pgo=off -ldflags "-s -w" -o "$stage/jaeger" \
    github.com/jaegertracing/jaeger/cmd/jaeger)
for b in "${binaries[@]}"; do mv -f "$stage/$b" "$bin/"; done
