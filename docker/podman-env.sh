# Sourced by docker/images.sh and the container tests: podman that works on
# these machines (see docs/install.md, "Building without Docker").
#  - installs podman, runc and debootstrap from Debian when missing;
#  - runc, not crun (crun 1.8 refuses hybrid cgroup v1+v2 hosts);
#  - ulimits within the host's hard nofile limit;
#  - host networking by default: nothing is ever sent to podman's 10.88/16 bridge.
_ttsfleet_cache="${TTSFLEET_CACHE:-$HOME/.cache/ttsfleet}/images"
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  _sudo=$([[ $(id -u) == 0 ]] || echo sudo)
  $_sudo apt-get update -qq && $_sudo apt-get install -y -qq podman runc debootstrap >/dev/null
fi
mkdir -p "$_ttsfleet_cache"
if [[ -z "${CONTAINERS_CONF:-}" ]]; then
  export CONTAINERS_CONF="$_ttsfleet_cache/containers.conf"
  cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"

[engine]
runtime = "runc"
EOF
fi
