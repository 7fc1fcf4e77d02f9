"""A real Kubernetes control plane for tests, built from the Go modules.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake
GPU nodes whose pods turn Running) run as local processes on 127.0.0.1; see
docs/test-cluster.md.
"""

from cluster.control_plane import ControlPlane, StartupError

__all__ = ["ControlPlane", "StartupError"]
