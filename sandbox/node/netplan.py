"""Names and addresses of a real node, from a slot number unique on this machine.

Several sandboxes (DASK_GKE_SANDBOX_DIR + port base) may run side by side, each
with several clusters, so every real node takes a slot from a machine-wide
registry in /run (gone at reboot, like the namespaces it describes). A slot
fixes everything that must not collide between nodes:

    network namespace   dask-gke-<slot>
    veth pair           dgk<slot>h (host side) <-> eth0 (in the namespace)
    link                198.19.<slot>.0/30: host .1, node .2 (the node's InternalIP)
    pod bridge          cbr0 in the namespace, 198.18.<slot>.0/24, gateway .1
                        (cluster DNS and the package index listen on the gateway)
    firewall tables     inet dask_gke_<slot> (host), inet dask_gke_node (namespace)
    cgroup root         /dask-gke-<slot> in every hierarchy

198.18.0.0/15 is the range RFC 2544 sets aside for benchmark networks: no
machine here routes it, so a packet to it can only reach our namespaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.node.processes import alive

REGISTRY_DIR = Path(os.environ.get("DASK_GKE_NODE_REGISTRY", "/run/dask-gke/slots"))
FIRST_SLOT, LAST_SLOT = 1, 254
POD_RANGE = ipaddress.ip_network("198.18.0.0/16")
LINK_RANGE = ipaddress.ip_network("198.19.0.0/16")
# kube-apiserver's default --service-cluster-ip-range (kwokctl sets none).
SERVICE_CIDR = ipaddress.ip_network("10.0.0.0/24")


class SlotsExhausted(RuntimeError):
    """Every slot of the machine-wide registry is taken."""


@dataclass(frozen=True)
class NodeNetwork:
    slot: int

    @property
    def netns(self) -> str:
        return f"dask-gke-{self.slot}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def host_veth(self) -> str:
        return f"dgk{self.slot}h"

    node_veth = "eth0"
    bridge = "cbr0"
    node_table = "dask_gke_node"

    @property
    def host_table(self) -> str:
        return f"dask_gke_{self.slot}"

    @property
    def cgroup_root(self) -> str:
        return f"/dask-gke-{self.slot}"

    def _link(self, host: int) -> ipaddress.IPv4Address:
        return LINK_RANGE.network_address + self.slot * 256 + host

    @property
    def host_ip(self) -> str:
        return str(self._link(1))

    @property
    def node_ip(self) -> str:
        return str(self._link(2))

    link_prefix = 30

    @property
    def pod_cidr(self) -> str:
        return str(ipaddress.ip_network(f"{POD_RANGE.network_address + self.slot * 256}/24"))

    @property
    def gateway_ip(self) -> str:
        """The bridge's address: pods' default gateway, cluster DNS, package index."""
        return str(ipaddress.ip_network(self.pod_cidr).network_address + 1)

    service_cidr = str(SERVICE_CIDR)

    def describe(self) -> dict:
        return {
            "slot": self.slot,
            "netns": self.netns,
            "host_veth": self.host_veth,
            "host_ip": self.host_ip,
            "node_ip": self.node_ip,
            "pod_cidr": self.pod_cidr,
            "gateway_ip": self.gateway_ip,
            "service_cidr": self.service_cidr,
        }


@dataclass(frozen=True)
class SlotOwner:
    sandbox_dir: str
    cluster_id: str
    pid: int  # the process that took the slot (the sandbox daemon)


@contextlib.contextmanager
def _registry_lock(registry: Path):
    registry.mkdir(parents=True, exist_ok=True)
    with (registry / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stale(path: Path) -> bool:
    """A slot whose owner died and whose namespace is gone (a crashed run, already cleaned)."""
    try:
        owner = SlotOwner(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return True
    return not alive(owner.pid) and not netns_exists(int(path.name))


def netns_exists(slot: int) -> bool:
    return NodeNetwork(slot).netns_path.exists()


def allocate_slot(owner: SlotOwner, registry: Path = REGISTRY_DIR) -> NodeNetwork:
    """Take the lowest free slot for owner."""
    with _registry_lock(registry):
        for slot in range(FIRST_SLOT, LAST_SLOT + 1):
            path = registry / str(slot)
            if path.exists() and not _stale(path):
                continue
            path.write_text(json.dumps(asdict(owner)) + "\n", encoding="utf-8")
            return NodeNetwork(slot)
    raise SlotsExhausted(
        f"all {LAST_SLOT - FIRST_SLOT + 1} real-node slots in {registry} are taken; "
        "stop other sandboxes (make sandbox-down)"
    )


def release_slot(network: NodeNetwork, registry: Path = REGISTRY_DIR) -> None:
    with _registry_lock(registry):
        (registry / str(network.slot)).unlink(missing_ok=True)


def all_slots(registry: Path = REGISTRY_DIR) -> dict[int, SlotOwner]:
    """Every taken slot of the machine and its owner."""
    taken = {}
    if not registry.is_dir():
        return taken
    for path in registry.iterdir():
        if not path.name.isdigit():
            continue
        try:
            taken[int(path.name)] = SlotOwner(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
    return taken


def slots_of(sandbox_dir: Path, registry: Path = REGISTRY_DIR) -> dict[int, SlotOwner]:
    """The slots taken for one sandbox directory (for `down` after a crash)."""
    return {
        slot: owner
        for slot, owner in all_slots(registry).items()
        if Path(owner.sandbox_dir) == Path(sandbox_dir)
    }
