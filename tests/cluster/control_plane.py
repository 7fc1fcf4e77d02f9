"""Start and stop a real control plane on 127.0.0.1 for tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
child processes with free loopback ports and a throwaway directory; fake GPU
nodes are registered once the API is ready. Everything listens on and dials
only 127.0.0.1: services get ClusterIPs in 198.51.100.0/24, nodes 192.0.2.0/24
and pods 203.0.113.0/24 (documentation ranges), and nothing connects to them.
"""

import functools
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client, config

from cluster import binaries
from cluster.fake_nodes import GPU_LABEL, KWOK_SELECTOR, gpu_node, is_schedulable
from cluster.kubeconfig import write_kubeconfig
from cluster.pki import CertificateAuthority, new_private_key, private_key_pem, public_key_pem
from cluster.polling import WaitTimeout, wait_until
from cluster.process import Component

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "198.51.100.0/24"
POD_CIDR = "203.0.113.0/24"
NODE_IP = "192.0.2.1"
ADMIN_USER = "admin"
ADMIN_GROUPS = ("system:masters",)


class StartupError(RuntimeError):
    """A component did not come up; the message names it and shows its log."""

    def __init__(self, component: Component, reason: str) -> None:
        super().__init__(
            f"{component.name} failed to start: {reason}\n"
            f"--- last lines of its log ---\n{component.log_tail()}"
        )
        self.component = component.name


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike the base class, str() shows stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """True when ``url`` answers 200; connection errors mean "not yet".

    Proxy variables are ignored: the probe must go straight to 127.0.0.1.
    """
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def _safe_name(identity: str) -> str:
    """A file name for a user or ServiceAccount name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", identity)


class ControlPlane:
    """A running test cluster: use as a context manager, or start()/stop().

    ``kubeconfig`` is the admin (system:masters) kubeconfig; use
    ``user_kubeconfig`` or ``service_account_kubeconfig`` for least-privilege
    identities.
    """

    def __init__(
        self, *, gpu_nodes: int = 2, gpus_per_node: int = 4, keep_dir: bool = False
    ) -> None:
        self.gpu_nodes = gpu_nodes
        self.gpus_per_node = gpus_per_node
        self.keep_dir = keep_dir
        self._workdir: Path | None = None
        self.server = ""
        self.kubeconfig = Path()
        self._components: list[Component] = []
        self._bins: dict[str, Path] = {}
        self._ca = CertificateAuthority()
        self._tls: ssl.SSLContext | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> "ControlPlane":
        """Bring every component up and wait until GPU nodes are schedulable."""
        self._bins = binaries.locate()
        self._workdir = Path(tempfile.mkdtemp(prefix="ttsfleet-controlplane-"))
        try:
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._start_controllers()
            self._register_gpu_nodes()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop components in reverse start order, then remove the directory."""
        for component in reversed(self._components):
            component.stop()
        self._components.clear()
        if self._workdir is not None and not self.keep_dir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    @property
    def dir(self) -> Path:
        """The directory with credentials, data and logs (exists while running)."""
        if self._workdir is None:
            raise RuntimeError("the control plane was never started")
        return self._workdir

    def pids(self) -> dict[str, int]:
        """Process ids of the running components (for measurements)."""
        return {c.name: c.pid for c in self._components if c.pid is not None}

    # -- clients -----------------------------------------------------------

    def api_client(self) -> client.ApiClient:
        """A ``kubernetes.client.ApiClient`` acting as the admin."""
        return self.api_client_for(self.kubeconfig)

    @staticmethod
    def api_client_for(kubeconfig: Path) -> client.ApiClient:
        """A ``kubernetes.client.ApiClient`` for any kubeconfig file."""
        api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))
        return api

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig authenticating by client certificate as ``user``.

        Any name works, including ``system:serviceaccount:<ns>:<name>`` with
        groups ``system:serviceaccounts`` and ``system:serviceaccounts:<ns>``,
        which RBAC treats exactly like that ServiceAccount.
        """
        return self._user_kubeconfig(
            f"{_safe_name(user)}.kubeconfig", user, client=self._ca.client(user, groups)
        )

    def service_account_kubeconfig(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig with a bound token for an existing ServiceAccount.

        The token comes from the TokenRequest API, as a projected token in a
        real pod would, so the identity is exactly the in-cluster one.
        """
        with self.api_client() as api:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
            )
            token = client.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, request
            )
        if token.status is None:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        user = f"system:serviceaccount:{namespace}:{name}"
        return self._user_kubeconfig(
            f"{_safe_name(user)}.token.kubeconfig", user, token=token.status.token
        )

    def _user_kubeconfig(self, filename: str, user: str, **credentials: Any) -> Path:
        """A kubeconfig for this cluster under users/, with a client certificate or a token."""
        path = self.dir / "users" / filename
        path.parent.mkdir(exist_ok=True)
        return write_kubeconfig(
            path, server=self.server, ca_pem=self._ca.pair.cert_pem, user=user, **credentials
        )

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster (admin unless told)."""
        argv = [str(self._bins["kubectl"]), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=120,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    # -- start-up steps ----------------------------------------------------

    def _env(self) -> dict[str, str]:
        """Children get a private HOME: no ~/.kwok or ~/.kube of the user leaks in."""
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["HOME"] = str(self.dir / "home")
        return env

    def _write_credentials(self) -> None:
        pki = self.dir / "pki"
        pki.mkdir()
        (self.dir / "home").mkdir()
        self._ca_file, self._ca_key_file = self._ca.pair.write(pki, "ca")
        self._serving_cert, self._serving_key = self._ca.serving().write(pki, "serving")
        admin = self._ca.client(ADMIN_USER, ADMIN_GROUPS)
        admin_cert, admin_key = admin.write(pki, "admin")
        sa_key = new_private_key()
        self._sa_key = pki / "service-account.key"
        self._sa_key.touch(mode=0o600)
        self._sa_key.write_bytes(private_key_pem(sa_key))
        self._sa_pub = pki / "service-account.pub"
        self._sa_pub.write_bytes(public_key_pem(sa_key))
        self._tls = ssl.create_default_context(cafile=str(self._ca_file))
        self._tls.load_cert_chain(str(admin_cert), str(admin_key))
        self.server = f"https://{LOOPBACK}:{free_port()}"
        self.kubeconfig = write_kubeconfig(
            self.dir / "admin.kubeconfig",
            server=self.server,
            ca_pem=self._ca.pair.cert_pem,
            user=ADMIN_USER,
            client=admin,
        )

    def _launch(self, name: str, args: list[str]) -> Component:
        component = Component(name, [str(self._bins[name]), *args], self.dir)
        component.start(self._env())
        self._components.append(component)
        return component

    def _await(
        self, component: Component, probe: Callable[[], Any], what: str, timeout: float
    ) -> Any:
        """Wait for ``probe``; fail fast, naming the component, if it exits."""

        def checked() -> Any:
            code = component.exit_code()
            if code is not None:
                raise StartupError(component, f"exited with status {code} before {what}")
            return probe()

        try:
            return wait_until(checked, what=what, timeout=timeout, interval=0.25)
        except WaitTimeout as timeout_error:
            raise StartupError(component, str(timeout_error)) from None

    def _start_etcd(self) -> None:
        client_url = f"http://{LOOPBACK}:{free_port()}"
        peer_url = f"http://{LOOPBACK}:{free_port()}"
        self._etcd_url = client_url
        etcd = self._launch(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # test data: durability buys nothing
                "--log-level=warn",
            ],
        )
        self._await(etcd, lambda: _http_ok(f"{client_url}/health"), "etcd /health", timeout=30)

    def _start_apiserver(self) -> None:
        port = self.server.rsplit(":", 1)[1]
        apiserver = self._launch(
            "kube-apiserver",
            [
                f"--etcd-servers={self._etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",  # no default route to guess from
                f"--secure-port={port}",
                f"--cert-dir={self.dir / 'apiserver'}",
                f"--tls-cert-file={self._serving_cert}",
                f"--tls-private-key-file={self._serving_key}",
                f"--client-ca-file={self._ca_file}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",  # Endpoints reject loopback
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={self._sa_pub}",
                f"--service-account-signing-key-file={self._sa_key}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        self._await(
            apiserver,
            lambda: _http_ok(f"{self.server}/readyz", self._tls),
            "kube-apiserver /readyz",
            timeout=120,
        )

    def _component_args(self, name: str, port: int) -> list[str]:
        """Flags kube-controller-manager and kube-scheduler share."""
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            # No front proxy: do not look up its (absent) request-header CA.
            "--authentication-skip-lookup=true",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.dir / name}",
            f"--tls-cert-file={self._serving_cert}",
            f"--tls-private-key-file={self._serving_key}",
        ]

    def _start_controllers(self) -> None:
        """Controller manager, scheduler and kwok start together, then are checked."""
        kcm_port, scheduler_port = free_port(), free_port()
        kcm = self._launch(
            "kube-controller-manager",
            [
                *self._component_args("kube-controller-manager", kcm_port),
                f"--service-account-private-key-file={self._sa_key}",
                f"--root-ca-file={self._ca_file}",
                f"--cluster-signing-cert-file={self._ca_file}",
                f"--cluster-signing-key-file={self._ca_key_file}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        scheduler = self._launch(
            "kube-scheduler", self._component_args("kube-scheduler", scheduler_port)
        )
        self._kwok = self._launch(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self._bins['kwok'].with_name('kwok-stages.yaml')}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_SELECTOR}",
                f"--cidr={POD_CIDR}",
                f"--node-ip={NODE_IP}",
                "--node-lease-duration-seconds=40",
            ],
        )
        for component, port in ((kcm, kcm_port), (scheduler, scheduler_port)):
            url = f"https://{LOOPBACK}:{port}/healthz"
            probe = functools.partial(_http_ok, url, self._tls)
            self._await(component, probe, f"{component.name} /healthz", 60)

    def _register_gpu_nodes(self) -> None:
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            for index in range(self.gpu_nodes):
                # A plain manifest: works with every kubernetes client version.
                core.create_node(gpu_node(f"gpu-node-{index}", self.gpus_per_node))

            def all_schedulable() -> bool:
                nodes = core.list_node(label_selector=f"{GPU_LABEL}=true").items
                return len(nodes) == self.gpu_nodes and all(is_schedulable(n) for n in nodes)

            self._await(self._kwok, all_schedulable, "GPU nodes Ready and untainted", timeout=60)

    def describe(self) -> str:
        """A JSON summary (server, kubeconfig, pids) for humans and scripts."""
        return json.dumps(
            {
                "server": self.server,
                "kubeconfig": str(self.kubeconfig),
                "dir": str(self.dir),
                "pids": self.pids(),
            },
            indent=2,
        )
