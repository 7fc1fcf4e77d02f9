#!/usr/bin/env bash
# Build the test control plane from pinned Go modules into a cache outside the
# repo:  ${TTSFLEET_CACHE:-~/.cache/ttsfleet}/controlplane/<k8s-version>/bin
#
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl come from
# modules/kubernetes, etcd from modules/etcd (both pinned by go.mod/go.sum,
# regenerated with pin.sh); kwok and helm are pinned by tag below. A complete
# cache makes this a no-op, so fixtures may call it unconditionally.
set -euo pipefail

KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/goenv.sh
source "$here/goenv.sh"

k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' \
  "$here/modules/kubernetes/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' \
  "$here/modules/etcd/go.mod")
root="$TTSFLEET_CACHE/controlplane/$k8s_version"
bin="$root/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)
stamp_text="kubernetes=$k8s_version etcd=$etcd_version kwok=$KWOK_VERSION helm=$HELM_VERSION"

binaries_complete() {
  [[ -f "$bin/.versions" && "$(cat "$bin/.versions")" == "$stamp_text" ]] || return 1
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

complete() {
  binaries_complete && [[ -f "$bin/kwok-stages.yaml" ]]
}

# The kwok binary has no built-in stages (kwokctl embeds them): take the
# defaults kwokctl uses from the kwok module itself, so they match the binary.
write_kwok_stages() {
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/kustomize/stage
  local files=(
    node/fast/node-initialize.yaml
    node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
    pod/fast/pod-ready.yaml
    pod/fast/pod-complete.yaml
    pod/fast/pod-delete.yaml
  )
  local f
  for f in "${files[@]}"; do
    echo "---"
    cat "$dir/$f"
  done >"$bin/kwok-stages.yaml.tmp"
  mv "$bin/kwok-stages.yaml.tmp" "$bin/kwok-stages.yaml"
}

if [[ "${1:-}" == "--print-bin-dir" ]]; then
  echo "$bin"
  exit 0
fi
complete && exit 0

mkdir -p "$root"
exec 9>"$root/.build.lock"
flock 9 # another process may be building the same cache
complete && exit 0
if binaries_complete; then
  write_kwok_stages
  exit 0
fi

stage=$(mktemp -d "$root/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

k8s_minor=${k8s_version#v1.}
k8s_minor=${k8s_minor%%.*}
version_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
ldflags="-s -w"
for p in "${version_pkgs[@]}"; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
  ldflags+=" -X $p.gitTreeState=clean"
done
build=(go build -p 2 -trimpath -pgo=off -tags=selinux,notest -mod=readonly)

echo "building Kubernetes $k8s_version into $bin" >&2
(cd "$here/modules/kubernetes" && "${build[@]}" -ldflags "$ldflags" -o "$stage/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl)

echo "building etcd $etcd_version" >&2
(cd "$here/modules/etcd" && "${build[@]}" -ldflags "-s -w" -o "$stage/etcd" \
  go.etcd.io/etcd/server/v3)

# go install pkg@version uses the tool's own go.mod and go.sum, checked
# against the checksum database.
install=(go install -p 2 -trimpath -pgo=off -tags=selinux,notest)
echo "building kwok $KWOK_VERSION" >&2
GOBIN="$stage" "${install[@]}" \
  -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
echo "building helm $HELM_VERSION" >&2
GOBIN="$stage" "${install[@]}" \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

mkdir -p "$bin"
for b in "${binaries[@]}"; do mv -f "$stage/$b" "$bin/$b"; done
echo "$stamp_text" >"$bin/.versions"
write_kwok_stages
echo "control plane binaries ready in $bin" >&2
