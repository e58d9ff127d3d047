"""KWOK cluster backend: real control planes (kwokctl, binary runtime) with fake nodes.

The GKE API emulator calls this from worker threads; every call blocks until it
is done or raises BackendError, whose message ends up in the GKE operation's
error. Layout under KWOK_WORKDIR (<sandbox>/kwok):

    clusters/<name>/        kwokctl's own files (kubeconfig.yaml, pki/, pids/, logs/)
    backend/<name>/         ours: cluster-id (the emulator's id)
    token-webhook.yaml      how every kube-apiserver asks the emulator about bearer tokens

Stages (sandbox/kwok/stages/*.yaml) make the fake nodes and their pods live.
The data plane (sandbox/node) adds what KWOK cannot: the cloud load balancer
of every cluster and a real node that runs pods for real; a node pool counts
the real node as one of its nodes.
"""

import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import ssl
import string
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.node.commands import NodeError
from sandbox.node.dataplane import ClusterFiles, DataPlane

log = logging.getLogger(__name__)

KWOK_DIR = Path(__file__).resolve().parents[1] / "kwok"
KWOKCTL_CONFIG = KWOK_DIR / "kwokctl.yaml"
SCHEDULER_CONFIG = KWOK_DIR / "scheduler.yaml"
STAGES_DIR = KWOK_DIR / "stages"

STAGE_GROUP, STAGE_VERSION, STAGE_PLURAL = "kwok.x-k8s.io", "v1alpha1", "stages"
NODE_POOL_LABEL = "cloud.google.com/gke-nodepool"
MACHINE_TYPE_LABEL = "node.kubernetes.io/instance-type"
FAKE_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}  # kwok manages only these nodes

# Bounded waits (seconds). A cold create on 2 cores takes about 10-20 s.
KWOKCTL_CREATE_TIMEOUT = 180
KWOKCTL_DELETE_TIMEOUT = 60
APISERVER_READY_TIMEOUT = 90
STAGE_CRD_TIMEOUT = 60
NODES_READY_TIMEOUT = 60
NODES_GONE_TIMEOUT = 60
PROCESS_EXIT_TIMEOUT = 15
POLL_INTERVAL = 0.2

_NAME_LIMIT = 40  # kwokctl names become directory names and the context "kwok-<name>"


class BackendError(Exception):
    """A backend call failed; the message is shown in the GKE operation's error."""


@dataclass(frozen=True)
class TokenWebhook:
    """Where kube-apiserver checks bearer tokens (a TokenReview webhook), as GKE's API
    servers accept Google access tokens until they expire."""

    url: str  # https://127.0.0.1:<port>/...
    ca_file: Path  # CA of the webhook's certificate
    server_name: str  # a name in that certificate
    probe_token: str  # a token it accepts, for the readiness probe
    cache_ttl: str = "2s"  # how long an answer is trusted: short, so expiry shows soon


@dataclass(frozen=True)
class ClusterAccess:
    endpoint: str  # "127.0.0.1:<port>"
    ca_pem: str  # PEM of the CA that signed the apiserver certificate


# ---------------------------------------------------------------- pure helpers


def split_cluster_id(cluster_id: str) -> tuple[str, str, str]:
    """'<project>.<location>.<name>' -> (project, location, name).

    Split from the right: domain-scoped project ids ("example.com:p") hold dots,
    locations and cluster names never do.
    """
    parts = cluster_id.rsplit(".", 2)
    if len(parts) != 3 or not all(parts):
        raise BackendError(
            f"cluster id {cluster_id!r} is not of the form <project>.<location>.<name>"
        )
    return parts[0], parts[1], parts[2]


def _dns_label(text: str, limit: int) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:limit].rstrip("-") or "x"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def kwok_cluster_name(cluster_id: str) -> str:
    """The kwokctl cluster name for an emulator cluster id: '<name>-<hash>'.

    The hash of the whole id keeps clusters of the same name in different
    projects or locations apart; names never contain dots, ids always do.
    """
    _, _, name = split_cluster_id(cluster_id)
    return f"{_dns_label(name, _NAME_LIMIT - 9)}-{_short_hash(cluster_id)}"


def node_name(cluster_id: str, pool: str, suffix: str) -> str:
    """GKE-style node name, gke-<cluster>-<pool>-<hash>-<suffix>, at most 63 characters."""
    _, _, name = split_cluster_id(cluster_id)
    pool_hash = _short_hash(f"{cluster_id}/{pool}")
    return f"gke-{_dns_label(name, 20)}-{_dns_label(pool, 20)}-{pool_hash}-{suffix}"


def new_node_suffix() -> str:
    """Four random characters, as GKE does. Names are never reused: a node
    re-created under an old name can lose its kwok lease for up to a lease
    period when the garbage collector removes the old node's Lease."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))


def region_of(location: str) -> str:
    """'us-central1-a' -> 'us-central1'; a region is its own region."""
    return re.sub(r"-[a-z]$", "", location)


def node_labels(cluster_id: str, pool: str, machine_type: str) -> dict[str, str]:
    """The labels GKE puts on every node of a pool (fake and real nodes alike)."""
    _, location, _ = split_cluster_id(cluster_id)
    return {
        NODE_POOL_LABEL: pool,
        MACHINE_TYPE_LABEL: machine_type,
        "topology.kubernetes.io/zone": location,
        "topology.kubernetes.io/region": region_of(location),
    }


def node_manifest(
    name: str, cluster_id: str, pool: str, machine_type: str, kubelet_version: str
) -> dict:
    """A fake Node as GKE labels it; kwok's node stages make it Ready."""
    node_id = hashlib.sha256(f"{cluster_id}/{name}".encode()).hexdigest()[:32]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                **node_labels(cluster_id, pool, machine_type),
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
            "annotations": dict(FAKE_NODE_ANNOTATION),
        },
        # Nodes keep the status they are created with (the Python client wants
        # a complete nodeInfo); the node-ready stage fills in conditions,
        # addresses and capacity and keeps these values.
        "status": {
            "nodeInfo": {
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "Container-Optimized OS from Google (KWOK fake node)",
                "kernelVersion": "kwok",
                "containerRuntimeVersion": "kwok://fake",
                "machineID": node_id,
                "systemUUID": node_id,
                "bootID": node_id,
            }
        },
    }


def token_webhook_kubeconfig(webhook: TokenWebhook) -> str:
    """kube-apiserver --authentication-token-webhook-config-file content."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "sandbox-token-webhook",
                    "cluster": {
                        "server": webhook.url,
                        "certificate-authority": str(webhook.ca_file),
                        "tls-server-name": webhook.server_name,
                    },
                }
            ],
            "users": [{"name": "kube-apiserver", "user": {}}],
            "contexts": [
                {
                    "name": "webhook",
                    "context": {"cluster": "sandbox-token-webhook", "user": "kube-apiserver"},
                }
            ],
            "current-context": "webhook",
        },
        sort_keys=False,
    )


def load_stages() -> list[dict]:
    """The node and pod stages of the fake nodes."""
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(STAGES_DIR.glob("*.yaml"))
    ]


def kwokctl_create_argv(
    bin_dir: Path, name: str, webhook_config: Path, cache_ttl: str = "2s"
) -> list[str]:
    """`kwokctl create cluster` with every binary given explicitly (no downloads)."""
    return [
        str(bin_dir / "kwokctl"),
        "create",
        "cluster",
        "--name",
        name,
        "--config",
        str(KWOKCTL_CONFIG),
        "--runtime",
        "binary",
        "--kube-apiserver-binary",
        str(bin_dir / "kube-apiserver"),
        "--kube-controller-manager-binary",
        str(bin_dir / "kube-controller-manager"),
        "--kube-scheduler-binary",
        str(bin_dir / "kube-scheduler"),
        "--etcd-binary",
        str(bin_dir / "etcd"),
        "--kube-scheduler-config",
        str(SCHEDULER_CONFIG),
        "--kwok-controller-binary",
        str(bin_dir / "kwok"),
        "--extra-args",
        f"kube-apiserver=authentication-token-webhook-config-file={webhook_config}",
        "--extra-args",
        "kube-apiserver=authentication-token-webhook-version=v1",
        "--extra-args",
        f"kube-apiserver=authentication-token-webhook-cache-ttl={cache_ttl}",
        "--kubeconfig",
        "",  # leave ~/.kube/config alone
    ]


def kwokctl_delete_argv(bin_dir: Path, name: str, workdir: Path) -> list[str]:
    # `delete --kubeconfig ""` fails ("empty path"); a kubeconfig that does not
    # exist is read as empty and left unwritten.
    return [
        str(bin_dir / "kwokctl"),
        "delete",
        "cluster",
        "--name",
        name,
        "--kubeconfig",
        str(unused_kubeconfig(workdir)),
    ]


def unused_kubeconfig(workdir: Path) -> Path:
    """A kubeconfig path nothing ever creates: kwokctl's default instead of ~/.kube/config."""
    return workdir / "no-kubeconfig"


def tool_env(bin_dir: Path, workdir: Path) -> dict[str, str]:
    """Environment of kwokctl: our binaries first, no proxy, our workdir."""
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        # kubectl (run by kwokctl) writes a discovery cache under $HOME/.kube:
        # keep it in the sandbox, away from the user's ~/.kube.
        "HOME": str(workdir),
        "KWOK_WORKDIR": str(workdir),
        "KUBECONFIG": str(unused_kubeconfig(workdir)),
        # kwokctl finds kubectl on PATH; the variable is a second guard
        # against its download fallback.
        "KWOK_KUBECTL_BINARY": str(bin_dir / "kubectl"),
    }


# ---------------------------------------------------------------- the backend


class KwokBackend:
    """Creates and deletes KWOK clusters; see the module docstring for the layout."""

    def __init__(
        self,
        sandbox_dir: Path,
        bin_dir: Path,
        token_webhook: TokenWebhook | None,
        data_plane: DataPlane | None = None,
    ):
        self.sandbox_dir = Path(sandbox_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve()
        self.workdir = self.sandbox_dir / "kwok"
        self.log_dir = self.sandbox_dir / "logs"
        self._webhook = token_webhook  # None only to delete clusters (sandbox down)
        self._probe_token = token_webhook.probe_token if token_webhook else None
        # kwokctl picks free ports before its components bind them, so two
        # concurrent creates could pick the same port: one create at a time.
        self._kwokctl_lock = threading.Lock()
        self.data_plane = data_plane or DataPlane(self.sandbox_dir, self.bin_dir)
        self.timings: dict[str, dict[str, float]] = {}  # cluster id -> step -> seconds

    # ------------------------------------------------------------ paths

    def _cluster_dir(self, name: str) -> Path:
        return self.workdir / "clusters" / name

    def _backend_dir(self, name: str) -> Path:
        return self.workdir / "backend" / name

    def _resolve_name(self, cluster_id: str) -> str:
        # list_clusters returns bare kwokctl names for clusters we have no id
        # for (made outside this backend); accept those back as they are.
        if "." not in cluster_id and self._cluster_dir(cluster_id).is_dir():
            return cluster_id
        return kwok_cluster_name(cluster_id)

    def _exists(self, name: str) -> bool:
        return (self._cluster_dir(name) / "kwok.yaml").is_file()

    # ------------------------------------------------------------ interface

    def create_cluster(self, cluster_id: str) -> ClusterAccess:
        name = kwok_cluster_name(cluster_id)
        started = time.monotonic()
        timings = self.timings.setdefault(cluster_id, {})
        if self._exists(name):
            log.warning(
                "cluster %s (%s) exists from an earlier run; recreating it", cluster_id, name
            )
            self.delete_cluster(cluster_id)
        try:
            with _as_backend_error(f"creating cluster {cluster_id}"):
                webhook_config = self._write_backend_files(name, cluster_id)
                self._run_kwokctl(
                    name,
                    kwokctl_create_argv(
                        self.bin_dir, name, webhook_config, self._webhook.cache_ttl
                    ),
                    KWOKCTL_CREATE_TIMEOUT,
                )
                timings["kwokctl_create"] = time.monotonic() - started
                access = self._access(name)
                self._wait_ready(access, name)
                timings["apiserver_ready"] = time.monotonic() - started
                self._install_stages(name)
                timings["stages_installed"] = time.monotonic() - started
                self.data_plane.cluster_created(
                    ClusterFiles(
                        cluster_id,
                        int(access.endpoint.rsplit(":", 1)[1]),
                        self._cluster_dir(name) / "pki",
                    ),
                    lambda: self._api(name),
                )
                timings["data_plane"] = time.monotonic() - started
        except BackendError as error:
            self._cleanup_failed_create(cluster_id, error)
            raise
        log.info(
            "cluster %s (%s) ready at %s in %.1f s",
            cluster_id,
            name,
            access.endpoint,
            timings["data_plane"],
        )
        return access

    def delete_cluster(self, cluster_id: str) -> None:
        name = self._resolve_name(cluster_id)
        started = time.monotonic()
        with _as_backend_error(f"deleting cluster {cluster_id}"):
            self.data_plane.cluster_deleting(cluster_id)
            pids = self._component_pids(name)
            if self._cluster_dir(name).exists():
                self._run_kwokctl(
                    name,
                    kwokctl_delete_argv(self.bin_dir, name, self.workdir),
                    KWOKCTL_DELETE_TIMEOUT,
                )
            self._stop_leftover_processes(name, pids)
            for directory in (self._cluster_dir(name), self._backend_dir(name)):
                if directory.exists():
                    shutil.rmtree(directory)
        self.timings.setdefault(cluster_id, {})["delete"] = time.monotonic() - started

    def ensure_node_pool(
        self, cluster_id: str, pool: str, node_count: int, machine_type: str
    ) -> None:
        if node_count < 0:
            raise BackendError(f"node pool {pool}: node count {node_count} is negative")
        name = self._existing_name(cluster_id)
        started = time.monotonic()
        with _as_backend_error(f"node pool {pool} of {cluster_id}"), self._api(name) as api:
            core = client.CoreV1Api(api)
            # The real node, when the pool has it, is one of its node_count nodes.
            fakes = node_count - self.data_plane.pool_nodes(
                cluster_id, pool, node_count, core, self._joiner(cluster_id, machine_type, core)
            )
            kubelet_version = client.VersionApi(api).get_code().git_version
            # Oldest first: a shrinking pool gives up its newest nodes.
            existing = sorted(
                self._fake_pool_nodes(core, pool),
                key=lambda node: (node.metadata.creation_timestamp, node.metadata.name),
            )
            taken = {node.metadata.name for node in existing}
            while len(taken) < fakes:
                new_name = node_name(cluster_id, pool, new_node_suffix())
                if new_name not in taken:
                    core.create_node(
                        node_manifest(new_name, cluster_id, pool, machine_type, kubelet_version)
                    )
                    taken.add(new_name)
            for extra in reversed(existing[fakes:]):
                _delete_ignoring_missing(lambda node=extra.metadata.name: core.delete_node(node))
            self._wait_for(
                lambda: self._pool_state(core, pool) == (node_count, node_count),
                NODES_READY_TIMEOUT,
                lambda: (
                    f"node pool {pool} of {cluster_id}: wanted {node_count} Ready nodes, "
                    f"have (nodes, ready) = {self._pool_state(core, pool)}; kwok controller "
                    f"log: {_tail(self._cluster_dir(name) / 'logs' / 'kwok-controller.log')}"
                ),
            )
        self.timings.setdefault(cluster_id, {})[f"pool {pool} at {node_count} nodes"] = (
            time.monotonic() - started
        )

    def delete_node_pool(self, cluster_id: str, pool: str) -> None:
        name = self._existing_name(cluster_id)
        with _as_backend_error(f"node pool {pool} of {cluster_id}"), self._api(name) as api:
            core = client.CoreV1Api(api)
            for node in self._fake_pool_nodes(core, pool):
                _delete_ignoring_missing(lambda node=node: core.delete_node(node.metadata.name))
            # A real node in the pool moves to another pool, in place of one of its fakes.
            others = {
                n.metadata.labels[NODE_POOL_LABEL]: n.metadata.labels.get(MACHINE_TYPE_LABEL, "")
                for n in core.list_node(label_selector=NODE_POOL_LABEL).items
                if n.metadata.labels[NODE_POOL_LABEL] != pool
            }
            moved_to = self.data_plane.pool_deleted(
                cluster_id, pool, core, sorted(others), self._joiner(cluster_id, None, core, others)
            )
            if moved_to:
                newest = max(
                    self._fake_pool_nodes(core, moved_to),
                    key=lambda node: (node.metadata.creation_timestamp, node.metadata.name),
                )
                _delete_ignoring_missing(lambda: core.delete_node(newest.metadata.name))
            self._wait_for(
                lambda: not self._pool_nodes(core, pool),
                NODES_GONE_TIMEOUT,
                lambda: f"node pool {pool} of {cluster_id}: nodes still present after delete",
            )

    @staticmethod
    def _joiner(cluster_id: str, machine_type: str | None, core, machine_types=None):
        """join(node, pool): register the real node as a node of pool, GKE-named and labelled."""

        def join(node, pool: str) -> None:
            kind = machine_type or (machine_types or {}).get(pool, "")
            node.join(
                pool,
                node_name(cluster_id, pool, new_node_suffix()),
                node_labels(cluster_id, pool, kind),
                core,
            )

        return join

    def load_balancer_ingresses(self, cluster_id: str) -> list[dict]:
        """LoadBalancer Services that have an address: {namespace, name, ip}."""
        name = self._existing_name(cluster_id)
        with _as_backend_error(f"services of {cluster_id}"), self._api(name) as api:
            services = client.CoreV1Api(api).list_service_for_all_namespaces().items
        return [
            {
                "namespace": service.metadata.namespace,
                "name": service.metadata.name,
                "ip": ingress.ip or ingress.hostname,
            }
            for service in services
            if service.spec.type == "LoadBalancer"
            for ingress in (
                (service.status.load_balancer or client.V1LoadBalancerStatus()).ingress or []
            )[:1]
        ]

    def list_clusters(self) -> list[str]:
        """Emulator ids of every cluster in the workdir (bare names if we lack the id)."""
        clusters_dir = self.workdir / "clusters"
        if not clusters_dir.is_dir():
            return []
        ids = []
        for cluster_dir in sorted(clusters_dir.iterdir()):
            id_file = self._backend_dir(cluster_dir.name) / "cluster-id"
            if id_file.is_file():
                ids.append(id_file.read_text(encoding="utf-8").strip())
            elif (cluster_dir / "kwok.yaml").is_file():
                ids.append(cluster_dir.name)
        return ids

    def set_load_balancer(self, assign: bool, delay_ms: int, cleanup_delay_ms: int = 500) -> None:
        """Switch LoadBalancer IP assignment in running clusters and future ones."""
        if delay_ms < 0 or cleanup_delay_ms < 0:
            raise BackendError(f"lb delays {delay_ms} ms, {cleanup_delay_ms} ms: negative")
        self.data_plane.set_load_balancer(assign, delay_ms, cleanup_delay_ms)

    # ------------------------------------------------------------ kwokctl

    def _run_kwokctl(self, name: str, argv: list[str], timeout: int) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"kwok-{name}.log"
        with self._kwokctl_lock, log_path.open("a", encoding="utf-8") as log_file:
            log_file.write(f"\n$ kwokctl {' '.join(argv[1:3])} --name {name}\n")
            log_file.flush()
            try:
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=tool_env(self.bin_dir, self.workdir),
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise BackendError(
                    f"kwokctl {argv[1]} cluster {name} did not finish within {timeout} s "
                    f"(log: {log_path})"
                ) from error
        if result.returncode != 0:
            raise BackendError(
                f"kwokctl {argv[1]} cluster {name} failed with exit code {result.returncode}: "
                f"{_tail(log_path)} (log: {log_path})"
            )

    def _write_backend_files(self, name: str, cluster_id: str) -> Path:
        """Write our per-cluster files; return the token webhook's config file."""
        if self._webhook is None:
            raise BackendError("this backend was made without a token webhook: it cannot create")
        backend_dir = self._backend_dir(name)
        backend_dir.mkdir(parents=True, exist_ok=True)
        (backend_dir / "cluster-id").write_text(cluster_id + "\n", encoding="utf-8")
        webhook_config = self.workdir / "token-webhook.yaml"
        webhook_config.write_text(token_webhook_kubeconfig(self._webhook), encoding="utf-8")
        return webhook_config

    def _cleanup_failed_create(self, cluster_id: str, error: BackendError) -> None:
        log.error("creating cluster %s failed: %s; removing what was started", cluster_id, error)
        try:
            self.delete_cluster(cluster_id)
        except BackendError as cleanup_error:
            log.error("cleanup of cluster %s failed too: %s", cluster_id, cleanup_error)

    def _component_pids(self, name: str) -> dict[int, str]:
        """PIDs kwokctl recorded for the cluster's components -> component name."""
        pids = {}
        for pid_file in sorted((self._cluster_dir(name) / "pids").glob("*.pid")):
            try:
                pids[int(pid_file.read_text(encoding="utf-8").strip())] = pid_file.stem
            except ValueError:
                log.warning("ignoring unreadable pid file %s", pid_file)
        return pids

    def _stop_leftover_processes(self, name: str, pids: dict[int, str]) -> None:
        """Make sure every component kwokctl started for this cluster has exited."""
        marker = str(self._cluster_dir(name))

        def alive() -> list[int]:
            return [pid for pid in pids if _runs_from(pid, marker)]

        try:
            self._wait_for(lambda: not alive(), PROCESS_EXIT_TIMEOUT, lambda: "")
            return
        except BackendError:
            pass
        for pid in alive():  # only our own components, recognised by their workdir
            log.warning(
                "cluster %s: %s (pid %d) outlived kwokctl delete; terminating it",
                name,
                pids[pid],
                pid,
            )
            _signal(pid, signal.SIGTERM)
        self._wait_for(
            lambda: not alive(),
            PROCESS_EXIT_TIMEOUT,
            lambda: (
                f"cluster {name}: processes still running after SIGTERM: "
                + ", ".join(f"{pids[pid]} (pid {pid})" for pid in alive())
            ),
        )

    # ------------------------------------------------------------ API access

    def _existing_name(self, cluster_id: str) -> str:
        name = self._resolve_name(cluster_id)
        if not self._exists(name):
            raise BackendError(f"cluster {cluster_id} does not exist in {self.workdir}")
        return name

    def _access(self, name: str) -> ClusterAccess:
        kubeconfig = yaml.safe_load(
            (self._cluster_dir(name) / "kubeconfig.yaml").read_text(encoding="utf-8")
        )
        server = kubeconfig["clusters"][0]["cluster"]["server"]
        match = re.fullmatch(r"https://127\.0\.0\.1:(\d+)", server)
        if not match:
            raise BackendError(
                f"cluster {name}: kubeconfig server {server!r} is not https://127.0.0.1:<port>"
            )
        ca_pem = (self._cluster_dir(name) / "pki" / "ca.crt").read_text(encoding="utf-8")
        return ClusterAccess(endpoint=f"127.0.0.1:{match.group(1)}", ca_pem=ca_pem)

    def _api(self, name: str) -> client.ApiClient:
        """API client with kwokctl's admin certificate; never uses a proxy."""
        access = self._access(name)
        pki = self._cluster_dir(name) / "pki"
        configuration = client.Configuration(
            host=f"https://{access.endpoint}",
            ssl_ca_cert=str(pki / "ca.crt"),
            cert_file=str(pki / "admin.crt"),
            key_file=str(pki / "admin.key"),
            proxy="",  # not None: None would pick HTTPS_PROXY up from the environment
        )
        return client.ApiClient(configuration)

    def _wait_ready(self, access: ClusterAccess, name: str) -> None:
        """Poll /readyz with a sandbox token: proves the apiserver and token auth."""
        context = ssl.create_default_context(cadata=access.ca_pem)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        request = urllib.request.Request(f"https://{access.endpoint}/readyz")
        if self._probe_token:
            request.add_header("Authorization", f"Bearer {self._probe_token}")
        last = {"answer": "no answer"}

        def ready() -> bool:
            try:
                with opener.open(request, timeout=5) as response:
                    return response.status == 200
            except urllib.error.HTTPError as error:
                last["answer"] = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                last["answer"] = str(error)
            return False

        self._wait_for(
            ready,
            APISERVER_READY_TIMEOUT,
            lambda: (
                f"cluster {name}: /readyz at {access.endpoint} not OK "
                f"(last answer: {last['answer']})"
            ),
        )

    # ------------------------------------------------------------ stages

    def _install_stages(self, name: str) -> None:
        with self._api(name) as api:
            custom = client.CustomObjectsApi(api)
            # kwokctl registers the Stage CRD just before it returns; wait
            # until the API serves it.
            self._wait_for(
                lambda: _stage_api_served(custom),
                STAGE_CRD_TIMEOUT,
                lambda: f"cluster {name}: the kwok Stage API is not served",
            )
            for stage in load_stages():
                _create_or_replace_stage(custom, stage)

    # ------------------------------------------------------------ nodes

    @staticmethod
    def _pool_nodes(core: client.CoreV1Api, pool: str) -> list:
        return core.list_node(label_selector=f"{NODE_POOL_LABEL}={pool}").items

    def _fake_pool_nodes(self, core: client.CoreV1Api, pool: str) -> list:
        return [
            node
            for node in self._pool_nodes(core, pool)
            if (node.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake"
        ]

    def _pool_state(self, core: client.CoreV1Api, pool: str) -> tuple[int, int]:
        nodes = self._pool_nodes(core, pool)
        ready = sum(1 for node in nodes if _is_ready(node))
        return len(nodes), ready

    # ------------------------------------------------------------ waiting

    @staticmethod
    def _wait_for(
        condition: Callable[[], bool], timeout: float, describe: Callable[[], str]
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if time.monotonic() >= deadline:
                raise BackendError(f"gave up after {timeout:g} s: {describe()}")
            time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------- small helpers


def _is_ready(node) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _stage_api_served(custom: client.CustomObjectsApi) -> bool:
    try:
        custom.list_cluster_custom_object(STAGE_GROUP, STAGE_VERSION, STAGE_PLURAL)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _create_or_replace_stage(custom: client.CustomObjectsApi, stage: dict) -> None:
    name = stage["metadata"]["name"]
    try:
        custom.create_cluster_custom_object(STAGE_GROUP, STAGE_VERSION, STAGE_PLURAL, stage)
        return
    except ApiException as error:
        if error.status != 409:
            raise BackendError(f"creating Stage {name}: {_api_reason(error)}") from error
    current = custom.get_cluster_custom_object(STAGE_GROUP, STAGE_VERSION, STAGE_PLURAL, name)
    replacement = copy.deepcopy(stage)
    replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    custom.replace_cluster_custom_object(
        STAGE_GROUP, STAGE_VERSION, STAGE_PLURAL, name, replacement
    )


def _delete_ignoring_missing(delete: Callable[[], object]) -> None:
    try:
        delete()
    except ApiException as error:
        if error.status != 404:
            raise BackendError(_api_reason(error)) from error


def _api_reason(error: ApiException) -> str:
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"HTTP {error.status} {error.reason}"


def _runs_from(pid: int, marker: str) -> bool:
    """True if pid is alive and its command line mentions marker (our cluster dir)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    if status.rsplit(")", 1)[1].split()[0] == "Z":  # exited, waiting to be reaped
        return False
    return marker.encode() in cmdline


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.kill(pid, signum)


@contextlib.contextmanager
def _as_backend_error(what: str):
    """Turn API, network and file errors into BackendError naming the operation."""
    try:
        yield
    except BackendError:
        raise
    except ApiException as error:
        raise BackendError(f"{what}: {_api_reason(error)}") from error
    except NodeError as error:
        raise BackendError(f"{what}: real node: {error}") from error
    except (OSError, urllib3.exceptions.HTTPError, yaml.YAMLError, KeyError) as error:
        raise BackendError(f"{what}: {type(error).__name__}: {error}") from error


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
