"""The processes of one real node: containerd, kubelet, kube-proxy and CoreDNS.

All four run inside the node's network namespace (nsenter, so they share the
host's mount namespace: the kubelet's volume mounts must be visible to runc).
They reach the cluster's kube-apiserver, which listens on the host's loopback
only, through a relay whose socket listens on 127.0.0.1:<same port> inside the
namespace, so kwokctl's own kubeconfig and certificates work unchanged.

Layout (one node slot; see netplan.py for the names):
    <sandbox>/node/<slot>/            configs, kubelet root, CNI state, node.json
    <sandbox>/node/containerd/<n>/    containerd root, kept between clusters (the
                                      imported images), locked while a node uses it
    /run/dask-gke/node-<slot>/        containerd state and sockets (short paths)
    <sandbox>/logs/node-<slot>-*.log  one log per process
    <sandbox>/pids/node-<slot>-*.pid  one PID file per process
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.node import cgroups
from sandbox.node.commands import NodeError, run
from sandbox.node.netplan import NodeNetwork
from sandbox.node.processes import NodeProcess, stop_processes_mentioning, wait_until

log = logging.getLogger(__name__)

RUN_ROOT = Path("/run/dask-gke")
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = Path("/usr/sbin/runc")
CONTAINERD = Path("/usr/bin/containerd")
CTR = Path("/usr/bin/ctr")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
REAL_NODE_LABEL = "sandbox.dask-gke.io/real-node"
MAX_PODS = 32  # room for a Dask release; scale tests use fake nodes

# Bounds (seconds), each named in the error when it runs out.
CONTAINERD_READY_TIMEOUT = 30
COREDNS_READY_TIMEOUT = 30
KUBELET_READY_TIMEOUT = 90
PODS_GONE_TIMEOUT = 60
CRICTL_TIMEOUT = 60


@dataclass(frozen=True)
class ClusterCredentials:
    """What the node's components need to reach the cluster (kwokctl's admin identity)."""

    api_port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_proxy: Path
    coredns: Path
    crictl: Path

    @classmethod
    def in_dir(cls, bin_dir: Path) -> NodeBinaries:
        return cls(
            bin_dir / "kubelet", bin_dir / "kube-proxy", bin_dir / "coredns", bin_dir / "crictl"
        )

    def missing(self) -> list[str]:
        wanted = [self.kubelet, self.kube_proxy, self.coredns, self.crictl, CONTAINERD, CTR, RUNC]
        found_cni = (CNI_BIN_DIR / "bridge").exists() and (CNI_BIN_DIR / "host-local").exists()
        return [str(p) for p in wanted if not p.exists()] + (
            [] if found_cni else [f"{CNI_BIN_DIR}/bridge, host-local"]
        )


# ---------------------------------------------------------------- configuration files


def kubeconfig(creds: ClusterCredentials) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {
                    "server": f"https://127.0.0.1:{creds.api_port}",
                    "certificate-authority": str(creds.ca_file),
                },
            }
        ],
        "users": [
            {
                "name": "node",
                "user": {
                    "client-certificate": str(creds.cert_file),
                    "client-key": str(creds.key_file),
                },
            }
        ],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "node"}}],
        "current-context": "sandbox",
    }


# containerd plugins no sandbox containerd loads: snapshotters of other file systems, tracing.
UNUSED_CONTAINERD_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
)


def containerd_base_config(root: Path, state: Path, socket: Path, disabled: tuple = ()) -> str:
    """A private containerd's own settings (version 2 config): its root, state and socket,
    no debug or metrics endpoint, the `disabled` plugins and the unused ones off."""
    plugins = "".join(f'  "{name}",\n' for name in (*disabled, *UNUSED_CONTAINERD_PLUGINS))
    return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
{plugins}]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"""


def containerd_config(net: NodeNetwork, root: Path, state: Path, cni_conf_dir: Path) -> str:
    # The opt plugin would write to /opt/containerd.
    base = containerd_base_config(
        root, state, state / "containerd.sock", disabled=("io.containerd.internal.v1.opt",)
    )
    return f"""# containerd of real node {net.netns} (generated by sandbox/node/runtime.py)
{base}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: lowering a pause container's
  # oom_score_adj to -998 fails every pod sandbox without this.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
"""


def cni_config(net: NodeNetwork, ipam_dir: Path) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "dask-gke",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "hairpinMode": True,
                # Nothing leaves the machine, so nothing is masqueraded.
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.pod_cidr, "gateway": net.gateway_ip}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def kubelet_config(
    net: NodeNetwork, containerd_socket: Path, resolv_conf: Path, static_dir: Path
) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine kind mounts cgroup v1 (hybrid); 1.35+ refuses it otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": net.cgroup_root,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{containerd_socket}",
        "address": net.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        # kube-apiserver (kwokctl) calls the kubelet without a client
        # certificate; only the host can reach this port (network.py).
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [net.gateway_ip],
        "resolvConf": str(resolv_conf),
        "maxPods": MAX_PODS,
        "staticPodPath": str(static_dir),
        "serializeImagePulls": False,
        # Images are imported once and never pulled: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(net: NodeNetwork, node_name: str, kubeconfig_path: Path) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": node_name,
        "clusterCIDR": net.pod_cidr,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": ["primary"],
        # Leave the (machine-wide) conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def corefile(net: NodeNetwork, kubeconfig_path: Path, index_host: str) -> str:
    return f"""# CoreDNS of real node {net.netns} (generated by sandbox/node/runtime.py)
cluster.local in-addr.arpa ip6.arpa {{
    bind {net.gateway_ip}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig_path} sandbox
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
{index_host.split(".", 1)[1]} {{
    bind {net.gateway_ip}
    errors
    hosts {{
        {net.gateway_ip} {index_host}
    }}
}}
# No forward plugin: nothing is resolved off the machine, and unknown names
# fail at once instead of timing out.
. {{
    bind {net.gateway_ip}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


# ---------------------------------------------------------------- containerd roots


class ContainerdRoot:
    """A containerd root of this sandbox, kept between clusters so images stay imported."""

    def __init__(self, sandbox_dir: Path):
        self.base = sandbox_dir / "node" / "containerd"
        self.path: Path | None = None
        self._lock_file = None

    def acquire(self) -> Path:
        self.base.mkdir(parents=True, exist_ok=True)
        for index in range(64):
            candidate = self.base / str(index)
            candidate.mkdir(exist_ok=True)
            handle = (candidate / ".in-use").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.path, self._lock_file = candidate, handle
            return candidate
        raise NodeError(f"no free containerd root under {self.base} (64 in use)")

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


# ---------------------------------------------------------------- the node


class NodeRuntime:
    """containerd + CoreDNS for the node's life; kubelet + kube-proxy while it is a Node."""

    def __init__(
        self,
        sandbox_dir: Path,
        net: NodeNetwork,
        binaries: NodeBinaries,
        creds: ClusterCredentials | None = None,
        index_host: str = "",
    ):
        self.sandbox_dir = sandbox_dir
        self.net = net
        self.binaries = binaries
        self.creds = creds
        self.index_host = index_host
        self.dir = sandbox_dir / "node" / str(net.slot)
        self.run_dir = RUN_ROOT / f"node-{net.slot}"
        self.kubeconfig_path = self.dir / "kubeconfig.yaml"
        self.kubelet_root = self.dir / "kubelet"
        self.containerd_root = ContainerdRoot(sandbox_dir)
        self.node_name: str | None = None
        prefix = f"node-{net.slot}-"
        self.processes = {
            name: NodeProcess(
                name,
                sandbox_dir / "pids" / f"{prefix}{name}.pid",
                sandbox_dir / "logs" / f"{prefix}{name}.log",
                netns=net.netns,
            )
            for name in ("containerd", "coredns", "kubelet", "kube-proxy")
        }

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    def ctr(self, *args: str) -> list[str]:
        return [str(CTR), "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]

    def crictl(self, *args: str) -> list[str]:
        endpoint = f"unix://{self.containerd_socket}"
        return [
            str(self.binaries.crictl),
            "--runtime-endpoint",
            endpoint,
            "--image-endpoint",
            endpoint,
            "--timeout",
            "20s",
            *args,
        ]

    # ------------------------------------------------------------ files

    def _write(self, path: Path, text: str, mode: int = 0o644) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
        return path

    def _write_configs(self) -> None:
        self._write(self.kubeconfig_path, yaml.safe_dump(kubeconfig(self.creds)), 0o600)
        root = self.containerd_root.acquire()
        self._write(
            self.dir / "containerd.toml",
            containerd_config(self.net, root, self.run_dir, self.dir / "cni" / "net.d"),
        )
        self._write(
            self.dir / "cni" / "net.d" / "10-dask-gke.conflist",
            json.dumps(cni_config(self.net, self.dir / "cni" / "ipam"), indent=2),
        )
        self._write(
            self.dir / "Corefile", corefile(self.net, self.kubeconfig_path, self.index_host)
        )
        # Pods inherit search domains from this file: none of the host's.
        self._write(self.dir / "resolv.conf", f"nameserver {self.net.gateway_ip}\n")
        (self.dir / "static-pods").mkdir(parents=True, exist_ok=True)
        self._write(
            self.dir / "kubelet.yaml",
            yaml.safe_dump(
                kubelet_config(
                    self.net,
                    self.containerd_socket,
                    self.dir / "resolv.conf",
                    self.dir / "static-pods",
                )
            ),
        )

    # ------------------------------------------------------------ start

    def start(self, archives: list, import_images) -> None:
        """containerd (with the images imported) and CoreDNS; the node is not a Node yet."""
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_configs()
        containerd = self.processes["containerd"]
        containerd.start([str(CONTAINERD), "--config", str(self.dir / "containerd.toml")])
        self._wait(
            lambda: (
                self.containerd_socket.is_socket()
                and run(self.ctr("version"), check=False).returncode == 0
            ),
            CONTAINERD_READY_TIMEOUT,
            "containerd to answer on its socket",
            containerd,
        )
        import_images(CTR, self.containerd_socket, archives)
        self.processes["coredns"].start(
            [str(self.binaries.coredns), "-conf", str(self.dir / "Corefile"), "-dns.port", "53"]
        )
        self._wait(
            lambda: (
                run(
                    [
                        "nsenter",
                        f"--net={self.net.netns_path}",
                        "--",
                        "ss",
                        "-lnu",
                        "sport",
                        "= :53",
                    ],
                    check=False,
                ).stdout.count(self.net.gateway_ip)
                > 0
            ),
            COREDNS_READY_TIMEOUT,
            f"CoreDNS to listen on {self.net.gateway_ip}:53",
            self.processes["coredns"],
        )
        log.info(
            "node %s: containerd and CoreDNS up in %.1f s",
            self.net.netns,
            time.monotonic() - started,
        )

    def join(self, node_name: str, labels: dict[str, str], core_api) -> None:
        """Start kubelet and kube-proxy as node_name; wait until the Node is Ready."""
        started = time.monotonic()
        self.node_name = node_name
        labels = {**labels, REAL_NODE_LABEL: "true"}
        kubelet = self.processes["kubelet"]
        kubelet.start(
            [
                str(self.binaries.kubelet),
                f"--config={self.dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.kubeconfig_path}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.kubelet_root / 'pki'}",
                f"--node-ip={self.net.node_ip}",
                f"--hostname-override={node_name}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                "--v=1",
            ]
        )
        proxy_config = self._write(
            self.dir / "kube-proxy.yaml",
            yaml.safe_dump(kube_proxy_config(self.net, node_name, self.kubeconfig_path)),
        )
        self.processes["kube-proxy"].start(
            [str(self.binaries.kube_proxy), f"--config={proxy_config}", "--v=1"]
        )
        self._wait(
            lambda: _node_ready(core_api, node_name),
            KUBELET_READY_TIMEOUT,
            f"Node {node_name} to be Ready",
            kubelet,
        )
        log.info(
            "node %s: Node %s Ready in %.1f s",
            self.net.netns,
            node_name,
            time.monotonic() - started,
        )

    # ------------------------------------------------------------ stop

    def leave(self, core_api) -> None:
        """Remove the node's pods, stop kubelet and kube-proxy, delete the Node."""
        name = self.node_name
        if name is None:
            return
        if self.processes["kubelet"].running():
            # As when a VM goes away: its pods are deleted; the kubelet still
            # runs, so it stops their containers and unmounts their volumes.
            _delete_pods_on(core_api, name)
            if not wait_until(lambda: not _pods_on(core_api, name), PODS_GONE_TIMEOUT):
                log.warning("node %s: pods still bound after %d s", name, PODS_GONE_TIMEOUT)
        for component in ("kube-proxy", "kubelet"):
            self.processes[component].stop()
        self._remove_pod_sandboxes()
        with contextlib.suppress(Exception):
            core_api.delete_node(name, grace_period_seconds=0)
        self.node_name = None

    def stop(self) -> None:
        """Stop every process, then remove what they left: containers, mounts, state.

        Works from the PID files alone, so a node whose daemon died is removed too.
        """
        for component in ("kube-proxy", "kubelet", "coredns"):
            self.processes[component].stop()
        self._remove_pod_sandboxes()
        self.processes["containerd"].stop()
        # What outlives containerd: its shims, and containers a crash left running.
        stop_processes_mentioning(str(self.containerd_socket))
        cgroups.kill_all(self.net.cgroup_root)
        unmount_under(self.kubelet_root)
        unmount_under(self.run_dir)
        self.containerd_root.release()
        for directory in (self.run_dir, self.kubelet_root, self.dir / "cni" / "ipam"):
            shutil.rmtree(directory, ignore_errors=True)

    def _remove_pod_sandboxes(self) -> None:
        if self.processes["containerd"].running():
            run(self.crictl("rmp", "--all", "--force"), timeout=CRICTL_TIMEOUT, check=False)

    # ------------------------------------------------------------ waits

    def _wait(self, condition, timeout: float, what: str, process: NodeProcess) -> None:
        def ok() -> bool:
            if not process.running():
                raise NodeError(
                    f"{process.name} exited while waiting for {what}: {process.log_tail()}"
                )
            return condition()

        if not wait_until(ok, timeout, poll=0.2):
            raise NodeError(
                f"gave up after {timeout:g} s waiting for {what} (log {process.log_file}: "
                f"{process.log_tail()})"
            )


def _node_ready(core_api, name: str) -> bool:
    try:
        node = core_api.read_node(name)
    except Exception:  # not registered yet, or the API is busy: ask again
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _pods_on(core_api, node_name: str) -> list:
    return core_api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node_name}").items


def _delete_pods_on(core_api, node_name: str) -> None:
    for pod in _pods_on(core_api, node_name):
        with contextlib.suppress(Exception):
            core_api.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below directory, deepest first (from /proc/self/mountinfo)."""
    prefix = str(directory.resolve()) if directory.exists() else str(directory)
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(directory: Path) -> None:
    for point in mounts_under(directory):
        run(["umount", "--lazy", point], check=False)
    left = mounts_under(directory)
    if left:
        raise NodeError(f"still mounted after umount: {', '.join(left[:5])}")
