# Sourced by build.sh and pin.sh: one Go environment whose module and build
# caches live outside the repo, so CI and later sessions reuse them.
export TTSFLEET_CACHE="${TTSFLEET_CACHE:-$HOME/.cache/ttsfleet}"
export GOTOOLCHAIN=local
export GOMODCACHE="$TTSFLEET_CACHE/go/mod"
export GOCACHE="$TTSFLEET_CACHE/go/build"
export CGO_ENABLED=0
