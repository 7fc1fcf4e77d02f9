#!/usr/bin/env bash
# Build the servers that voice-source tests fetch from, pinned by version, into
# a cache outside the repo: ${TTSFLEET_CACHE:-~/.cache/ttsfleet}/<name>/<version>/
#   registry  - the CNCF distribution registry (OCI artifacts)
#   gofakes3  - an S3-compatible object server
# A complete cache makes this a no-op, so fixtures may call it unconditionally.
set -euo pipefail

REGISTRY_VERSION=v3.1.2
GOFAKES3_VERSION=v1.2.0

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/goenv.sh
source "$here/../cluster/goenv.sh"

install() {  # name module-package version
  local dest="$TTSFLEET_CACHE/$1/$3"
  [[ -x "$dest/$1" ]] && return 0
  mkdir -p "$dest"
  GOBIN="$dest" go install "$2@$3"
}

install registry github.com/distribution/distribution/v3/cmd/registry "$REGISTRY_VERSION"
install gofakes3 github.com/johannesboyne/gofakes3/cmd/gofakes3 "$GOFAKES3_VERSION"
