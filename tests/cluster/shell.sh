#!/usr/bin/env bash
# Start a test control plane and open a shell against it; exiting the shell
# stops the cluster.  Usage: tests/cluster/shell.sh [python -m cluster flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/build.sh" # no-op when cached; a cold build takes a while
log=$(mktemp)
cluster_pid=""
trap 'kill -TERM "$cluster_pid" 2>/dev/null; wait "$cluster_pid" 2>/dev/null; rm -f "$log"' EXIT

(cd "$here/.." && exec python3 -m cluster "$@") >"$log" 2>&1 &
cluster_pid=$!
for _ in $(seq 300); do # bounded wait for start-up
  grep -q '^export KUBECONFIG=' "$log" && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 1
done
grep -q '^export KUBECONFIG=' "$log" || { cat "$log" >&2; exit 1; }

kubeconfig=$(sed -n 's/^export KUBECONFIG=//p' "$log")
bin_dir=$(bash "$here/build.sh" --print-bin-dir)
echo "KUBECONFIG=$kubeconfig; kubectl, helm, etcd... from $bin_dir are on PATH; exit to stop"
KUBECONFIG="$kubeconfig" PATH="$bin_dir:$PATH" PS1='(ttsfleet-test) \w\$ ' \
  bash --norc -i
