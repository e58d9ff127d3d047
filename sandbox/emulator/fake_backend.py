"""In-memory cluster backend with KwokBackend's interface, for unit tests only."""

import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from sandbox.emulator.ca import make_ca


@dataclass
class FakeClusterAccess:
    endpoint: str
    ca_pem: str


class FakeBackendError(Exception):
    pass


class FakeBackend:
    """Records every call; clusters and node pools are dict entries."""

    def __init__(self, sandbox_dir=None, bin_dir=None, token_webhook=None):
        self.lock = threading.Lock()
        self.calls: list[tuple] = []
        self.clusters: dict[str, dict[str, dict]] = {}  # cluster -> pool -> {count, machine}
        # cluster -> LoadBalancer Services with an address ({namespace, name, ip}), for tests
        self.load_balancers: dict[str, list[dict]] = {}
        self.load_balancer = {"assign": True, "delay_ms": 500, "cleanup_delay_ms": 500}
        self.fail_next: str | None = None  # message of the next call to fail, for tests
        self._next_port = 30443
        _, cert = make_ca("fake cluster CA")
        self._ca_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def _record(self, *call) -> None:
        with self.lock:
            self.calls.append(call)
            if self.fail_next is not None:
                message, self.fail_next = self.fail_next, None
                raise FakeBackendError(message)

    def create_cluster(self, cluster_id: str) -> FakeClusterAccess:
        self._record("create_cluster", cluster_id)
        with self.lock:
            self.clusters.setdefault(cluster_id, {})
            self._next_port += 1
            return FakeClusterAccess(f"127.0.0.1:{self._next_port}", self._ca_pem)

    def delete_cluster(self, cluster_id: str) -> None:
        self._record("delete_cluster", cluster_id)
        with self.lock:
            self.clusters.pop(cluster_id, None)

    def ensure_node_pool(self, cluster_id: str, pool: str, node_count: int, machine_type: str):
        self._record("ensure_node_pool", cluster_id, pool, node_count, machine_type)
        with self.lock:
            if cluster_id not in self.clusters:
                raise FakeBackendError(f"cluster {cluster_id} does not exist")
            self.clusters[cluster_id][pool] = {"count": node_count, "machine_type": machine_type}

    def delete_node_pool(self, cluster_id: str, pool: str) -> None:
        self._record("delete_node_pool", cluster_id, pool)
        with self.lock:
            self.clusters.get(cluster_id, {}).pop(pool, None)

    def load_balancer_ingresses(self, cluster_id: str) -> list[dict]:
        with self.lock:
            return [dict(service) for service in self.load_balancers.get(cluster_id, [])]

    def list_clusters(self) -> list[str]:
        with self.lock:
            return sorted(self.clusters)

    def set_load_balancer(self, assign: bool, delay_ms: int, cleanup_delay_ms: int = 500) -> None:
        self._record("set_load_balancer", assign, delay_ms, cleanup_delay_ms)
        with self.lock:
            self.load_balancer = {
                "assign": assign,
                "delay_ms": delay_ms,
                "cleanup_delay_ms": cleanup_delay_ms,
            }
