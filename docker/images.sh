#!/usr/bin/env bash
# Builds ttsfleet's images with podman, from the repository's own Dockerfiles,
# with no registry: the base is a Debian rootfs made by debootstrap from
# Debian's packages and cached under $TTSFLEET_CACHE/images.
#
#   docker/images.sh                 # base (cached) + control-plane + gate + CPU inference image
#   TAG=1.2.3 docker/images.sh
#
# Images: localhost/ttsfleet:$TAG (operator, router, gateway, worker; no GPL
# code), localhost/ttsfleet-gate:$TAG (`ttsfleet gate` with Whisper base; no
# GPL code) and localhost/ttsfleet-inference:$TAG (Piper ONNX engine on CPU, the
# joe voice baked in). With Docker and a registry, build the same Dockerfiles
# with their default (official) bases instead: see docs/install.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${TTSFLEET_CACHE:-$HOME/.cache/ttsfleet}/images"
TAG=${TAG:-dev}
SUITE=bookworm
BASE=localhost/ttsfleet-base:$SUITE
CONTROL_PLANE=localhost/ttsfleet:$TAG
GATE=localhost/ttsfleet-gate:$TAG
INFERENCE=localhost/ttsfleet-inference:$TAG
mkdir -p "$cache"

# shellcheck source=docker/podman-env.sh
source "$root/docker/podman-env.sh"

# The base: Debian minbase with Python, trusting the host's extra CAs (a
# TLS-intercepting proxy's, where there is one) so pip inside builds works.
make_base() {
  local tarball="$cache/debian-$SUITE-python.tar"
  if [[ ! -f "$tarball" ]]; then
    local rootfs mirror
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    mirror=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 '/debian/$' || true)
    echo "images: debootstrap $SUITE from ${mirror:-deb.debian.org}" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$rootfs" "${mirror:-http://deb.debian.org/debian/}" >"$cache/debootstrap.log"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
      chroot "$rootfs" update-ca-certificates >/dev/null
      # pip (as Debian ships it) trusts certifi's bundle, not the system store.
      printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    fi
    # As Debian's official images do: no apt lists or package caches in the layer.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . >"$tarball.partial"
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$BASE" >/dev/null
}

build() {  # build IMAGE DOCKERFILE [BUILD-ARG...]
  local image=$1 dockerfile=$2
  shift 2
  local started=$SECONDS
  podman build --quiet --network host --ignorefile "$root/.dockerignore" \
    -f "$root/$dockerfile" -t "$image" "${@/#/--build-arg=}" "$root" >/dev/null
  echo "images: $image built in $((SECONDS - started)) s," \
    "$(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1 / 1e6}')" >&2
}

podman image exists "$BASE" || make_base
build "$CONTROL_PLANE" docker/Dockerfile "PYTHON_IMAGE=$BASE"
build "$GATE" docker/Dockerfile "PYTHON_IMAGE=$BASE" "EXTRAS=gate"
build "$INFERENCE" docker/Dockerfile.inference "BASE_IMAGE=$BASE" "ENGINE_EXTRA=piper"
# The build stages' images: nothing refers to them once the final stages exist.
podman image prune --force >/dev/null
