"""What the KWOK backend drives: the load balancer of every cluster, and its real node.

One DataPlane per sandbox daemon. For each cluster it runs the cloud load
balancer (always: fake-node-only clusters still get LoadBalancer IPs) and,
when this machine can host one, a real node that joins one node pool as one
of that pool's nodes:

- the first pool that gets nodes gets the real node (it replaces one fake);
- when that pool is deleted, the real node leaves with it (its pods are
  deleted, as when GKE deletes a pool's VMs) and re-registers as a node of
  another pool, replacing one of that pool's fakes, so every pool keeps the
  size GKE reports; with no pool left it waits for the next one.

A node's slot is taken in the machine-wide registry (netplan.py) before
anything is made, and every name and path follows from the slot, so a
teardown without the daemon (`sandbox.cli down` after a crash) finds and
removes all of it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.node import cgroups, network
from sandbox.node.commands import NodeError, run
from sandbox.node.loadbalancer import Cloud, ForwardingRules, LoadBalancerController
from sandbox.node.netplan import (
    NodeNetwork,
    SlotOwner,
    all_slots,
    allocate_slot,
    release_slot,
    slots_of,
)
from sandbox.node.processes import alive, read_pid
from sandbox.node.relay import Relay, RelayHub
from sandbox.node.runtime import (
    CTR,
    RUN_ROOT,
    ClusterCredentials,
    NodeBinaries,
    NodeRuntime,
    mounts_under,
)
from sandbox.pypi import INDEX_HOST, INDEX_PORT

log = logging.getLogger(__name__)

MODE_VARIABLE = "DASK_GKE_SANDBOX_REAL_NODE"  # auto (default), on, off
IMPORT_TIMEOUT = 600  # seconds for ctr to import one node's images
# Stand-in image -> the other tags it is served under: the tiller scenario deploys a
# Tiller v2.16.0 to prove the Helm 2 client refuses it.
STAND_IN_TAGS = {"ghcr.io/helm/tiller:v2.17.0": ("ghcr.io/helm/tiller:v2.16.0",)}


@dataclass(frozen=True)
class ClusterFiles:
    """What the data plane needs of a KWOK cluster."""

    cluster_id: str
    api_port: int
    pki_dir: Path  # kwokctl's pki/: ca.crt, admin.crt, admin.key


def real_node_capability(bin_dir: Path) -> str | None:
    """None when this machine can host a real node, else the reason in one line."""
    if os.geteuid() != 0:
        return "not root: network namespaces, cgroups and containerd need root"
    if shutil.which("nsenter") is None or shutil.which("ip") is None:
        return "nsenter or ip (util-linux, iproute2) missing"
    if shutil.which("nft") is None:
        return "nft (nftables) missing"
    missing = NodeBinaries.in_dir(bin_dir).missing()
    if missing:
        return (
            "missing " + ", ".join(missing) + " (make sandbox-tools, make sandbox-system-packages)"
        )
    if not os.access("/sys/fs/cgroup", os.W_OK):
        return "/sys/fs/cgroup is not writable"
    return None


class RealNode:
    """One cluster's real node: network, cgroups, relays, containerd/CoreDNS, kubelet."""

    def __init__(self, plane: DataPlane, files: ClusterFiles, net: NodeNetwork):
        self.plane = plane
        self.files = files
        self.net = net
        self.pool: str | None = None
        self.relays: list[Relay] = []
        self.runtime = NodeRuntime(
            plane.sandbox_dir,
            net,
            NodeBinaries.in_dir(plane.bin_dir),
            ClusterCredentials(
                files.api_port,
                files.pki_dir / "ca.crt",
                files.pki_dir / "admin.crt",
                files.pki_dir / "admin.key",
            ),
            INDEX_HOST,
        )

    def start(self) -> None:
        started = time.monotonic()
        network.create(self.net)
        cgroups.create_root(self.net.cgroup_root)
        hub = self.plane.cloud.hub
        self.relays.append(
            hub.listen(
                Relay(
                    name=f"{self.net.netns} kube-apiserver",
                    listen=("127.0.0.1", self.files.api_port),
                    target=lambda: ("127.0.0.1", self.files.api_port),
                    netns_path=self.net.netns_path,
                )
            )
        )
        if self.plane.index_port:
            self.relays.append(
                hub.listen(
                    Relay(
                        name=f"{self.net.netns} package index",
                        listen=(self.net.gateway_ip, INDEX_PORT),
                        target=lambda: ("127.0.0.1", self.plane.index_port),
                        netns_path=self.net.netns_path,
                    )
                )
            )
        self.runtime.start(self.plane.image_archives(), self.plane.import_images)
        log.info("real node %s started in %.1f s", self.net.netns, time.monotonic() - started)

    def join(self, pool: str, node_name: str, labels: dict[str, str], core) -> None:
        self.runtime.join(node_name, labels, core)
        self.pool = pool

    def leave(self, core) -> None:
        self.runtime.leave(core)
        self.pool = None

    def destroy(self) -> None:
        for relay in self.relays:
            self.plane.cloud.hub.close(relay)
        self.relays.clear()
        destroy_node_on_disk(self.plane.sandbox_dir, self.net, self.runtime)


def destroy_node_on_disk(sandbox_dir: Path, net: NodeNetwork, runtime: NodeRuntime) -> None:
    """Remove a node from what is recorded: processes, containers, mounts, cgroups, network."""
    runtime.stop()
    cgroups.remove_root(net.cgroup_root)
    network.delete(net)
    release_slot(net)
    shutil.rmtree(sandbox_dir / "node" / str(net.slot), ignore_errors=True)


def record_slot(sandbox_dir: Path, slot: int) -> None:
    """Remember every slot this sandbox used, so leftovers() can check each after teardown."""
    path = sandbox_dir / "node" / "slots-used"
    path.parent.mkdir(parents=True, exist_ok=True)
    used = set(path.read_text(encoding="utf-8").split()) if path.exists() else set()
    path.write_text("\n".join(sorted(used | {str(slot)}, key=int)) + "\n", encoding="utf-8")


def leftovers(sandbox_dir: Path) -> list[str]:
    """Whatever a real node of this sandbox made that still exists (empty after teardown)."""
    sandbox_dir = Path(sandbox_dir).resolve()
    path = sandbox_dir / "node" / "slots-used"
    found = [f"registry slot {slot}" for slot in slots_of(sandbox_dir)]
    for slot in (int(s) for s in path.read_text(encoding="utf-8").split()) if path.exists() else []:
        net = NodeNetwork(slot)
        if slot in slots_of_others(sandbox_dir):
            continue  # another sandbox took the slot since: not ours to judge
        found += network.leftovers(net) + [
            f"cgroup {c}" for c in cgroups.leftovers(net.cgroup_root)
        ]
        run_dir = RUN_ROOT / f"node-{slot}"
        if run_dir.exists():
            found.append(f"directory {run_dir}")
    found += [f"mount {m}" for m in mounts_under(sandbox_dir)]
    for pid_file in sorted((sandbox_dir / "pids").glob("node-*.pid")):
        if alive(read_pid(pid_file)):
            found.append(f"process {pid_file.stem} (pid {read_pid(pid_file)})")
    return found


def slots_of_others(sandbox_dir: Path) -> set[int]:
    return {slot for slot, owner in all_slots().items() if Path(owner.sandbox_dir) != sandbox_dir}


def remove_leftover_nodes(
    sandbox_dir: Path, bin_dir: Path, cluster_id: str | None = None
) -> list[str]:
    """Tear down the real nodes recorded for this sandbox (of one cluster, or all); names."""
    sandbox_dir = Path(sandbox_dir).resolve()
    removed = []
    for slot, owner in sorted(slots_of(sandbox_dir).items()):
        if cluster_id is not None and owner.cluster_id != cluster_id:
            continue
        net = NodeNetwork(slot)
        runtime = NodeRuntime(sandbox_dir, net, NodeBinaries.in_dir(bin_dir))
        destroy_node_on_disk(sandbox_dir, net, runtime)
        removed.append(net.netns)
    return removed


class ClusterPlane:
    def __init__(self, files: ClusterFiles, node: RealNode | None):
        self.files = files
        self.node = node
        self.controller: LoadBalancerController | None = None


class DataPlane:
    """The KWOK backend's view: cluster_created, pool_nodes, pool_deleted, cluster_deleting."""

    def __init__(self, sandbox_dir: Path, bin_dir: Path, mode: str | None = None):
        self.sandbox_dir = Path(sandbox_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve()
        self.cloud = Cloud(RelayHub(), ForwardingRules(self.sandbox_dir / "forwarding-rules.json"))
        mode = (mode or os.environ.get(MODE_VARIABLE) or "auto").lower()
        if mode not in {"auto", "on", "off"}:
            raise NodeError(f"{MODE_VARIABLE}={mode!r}: use auto, on or off")
        reason = "switched off (DASK_GKE_SANDBOX_REAL_NODE=off)" if mode == "off" else None
        reason = reason or real_node_capability(self.bin_dir)
        if reason and mode == "on":
            raise NodeError(
                f"{MODE_VARIABLE}=on but this machine cannot host a real node: {reason}"
            )
        self.real_node_reason = reason  # None: every cluster gets a real node
        self.index_port: int | None = None  # host port of the package index (sandbox.pypi)
        self.dask_versions: list[str] = []  # images imported into every real node
        self._images_lock = threading.Lock()
        self._clusters: dict[str, ClusterPlane] = {}
        self._lock = threading.Lock()

    def enable_real_nodes(self, enabled: bool) -> None:
        """Switch real nodes on or off for clusters created from now on."""
        if not enabled:
            self.real_node_reason = "switched off (PUT /real-node)"
            return
        reason = real_node_capability(self.bin_dir)
        if reason:
            raise NodeError(f"this machine cannot host a real node: {reason}")
        self.real_node_reason = None

    # ------------------------------------------------------------ images

    def image_archives(self) -> list:
        """Every image a real node carries, built if needed (nothing is ever pulled)."""
        from sandbox import images  # noqa: PLC0415 - loaded only where a real node runs

        with self._images_lock:
            try:
                # Pause, the stand-ins of images the roles name (legacy Tiller), Dask.
                archives = [images.ensure_pause_image(), *images.ensure_stand_in_images()]
                for version in self.dask_versions:
                    archives.extend(images.ensure_images(version))
            except Exception as error:  # ImageError, or a build tool failing
                raise NodeError(f"building the node's images: {error}") from error
            return archives

    @staticmethod
    def import_images(ctr: Path, address: Path, archives: list) -> None:
        from sandbox import images  # noqa: PLC0415

        try:
            images.import_images(ctr, address, archives, timeout=IMPORT_TIMEOUT)
        except Exception as error:  # ImageError, or ctr failing
            raise NodeError(f"importing images into {address}: {error}") from error
        # A registry serves every release: the stand-ins also answer to the older tags
        # the tests deploy (tagged here, so the image cache keys stay as they are).
        imported = {ref for archive in archives for ref in archive.refs}
        for source, extra in STAND_IN_TAGS.items():
            if source in imported:
                for tag in extra:
                    run(
                        [
                            str(ctr),
                            "-a",
                            str(address),
                            "-n",
                            "k8s.io",
                            "images",
                            "tag",
                            "--force",
                            source,
                            tag,
                        ],
                        timeout=IMPORT_TIMEOUT,
                    )

    def add_dask_version(self, version: str) -> None:
        """Build (if needed) and import a Dask version's images into every real node."""
        if version not in self.dask_versions:
            self.dask_versions.append(version)
        archives = self.image_archives()
        for plane in self._planes():
            if plane.node is not None:
                self.import_images(CTR, plane.node.runtime.containerd_socket, archives)

    # ------------------------------------------------------------ clusters

    def _planes(self) -> list[ClusterPlane]:
        with self._lock:
            return list(self._clusters.values())

    def cluster_created(self, files: ClusterFiles, api_client_factory) -> None:
        """Start the cluster's real node (not yet a Node), then its load balancer."""
        node = None
        if self.real_node_reason is None:
            net = allocate_slot(SlotOwner(str(self.sandbox_dir), files.cluster_id, os.getpid()))
            record_slot(self.sandbox_dir, net.slot)
            node = RealNode(self, files, net)
            try:
                node.start()
            except Exception:
                node.destroy()
                raise
        plane = ClusterPlane(files, node)
        plane.controller = LoadBalancerController(
            files.cluster_id,
            api_client_factory,
            self.cloud,
            forward=(lambda fwds: network.apply_load_balancer_rules(node.net, fwds))
            if node
            else None,
            address_block=node.net.slot if node else 0,
        )
        plane.controller.start()
        with self._lock:
            self._clusters[files.cluster_id] = plane

    def _node(self, cluster_id: str) -> RealNode | None:
        with self._lock:
            plane = self._clusters.get(cluster_id)
        return plane.node if plane else None

    def pool_nodes(self, cluster_id: str, pool: str, node_count: int, core, join) -> int:
        """How many of the pool's node_count nodes the real node is (0 or 1).

        A free real node joins a pool that wants nodes; a pool shrunk to zero
        lets its real node go. join(node, pool) registers it with the pool's
        GKE name and labels, which the backend knows.
        """
        node = self._node(cluster_id)
        if node is None:
            return 0
        if node.pool == pool and node_count == 0:
            node.leave(core)
        elif node.pool is None and node_count > 0:
            join(node, pool)
        return 1 if node.pool == pool else 0

    def pool_deleted(
        self, cluster_id: str, pool: str, core, other_pools: list[str], join
    ) -> str | None:
        """The pool is gone: its real node leaves; returns the pool it then joined, if any."""
        node = self._node(cluster_id)
        if node is None or node.pool != pool:
            return None
        node.leave(core)
        if not other_pools:
            return None
        join(node, other_pools[0])
        return other_pools[0]

    def cluster_deleting(self, cluster_id: str) -> None:
        """Before the control plane goes: stop the LB (its rules leak), remove the node."""
        with self._lock:
            plane = self._clusters.pop(cluster_id, None)
        if plane is not None:
            plane.controller.stop()
            if plane.node is not None:
                plane.node.destroy()
        leaked = self.cloud.rules.cluster_deleted(cluster_id)
        for rule in leaked:
            log.warning(
                "cluster %s deleted with forwarding rule %s (%s) still in place: leaked",
                cluster_id,
                rule.name,
                rule.service,
            )
        # A node left by a daemon that died (no plane in memory): from the registry.
        remove_leftover_nodes(self.sandbox_dir, self.bin_dir, cluster_id)

    def set_load_balancer(self, assign: bool, delay_ms: int, cleanup_delay_ms: int) -> None:
        self.cloud.settings.assign = bool(assign)
        self.cloud.settings.delay_ms = int(delay_ms)
        self.cloud.settings.cleanup_delay_ms = int(cleanup_delay_ms)
        for plane in self._planes():
            plane.controller.resync()

    def snapshot(self) -> dict:
        nodes = {}
        for plane in self._planes():
            node = plane.node
            nodes[plane.files.cluster_id] = (
                {**node.net.describe(), "pool": node.pool, "name": node.runtime.node_name}
                if node
                else None
            )
        return {
            **self.cloud.rules.snapshot(),
            "realNodes": nodes,
            "realNodeDisabled": self.real_node_reason,
        }

    def shutdown(self) -> None:
        self.cloud.hub.stop()
