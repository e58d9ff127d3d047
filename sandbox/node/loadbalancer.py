"""The sandbox's cloud load balancer: what GKE's service controller and a GCP L4 LB do.

For every Service of type LoadBalancer in a cluster it:
- adds GKE's finalizer `service.kubernetes.io/load-balancer-cleanup` first,
- gives it a 127/8 address of its own (the "forwarding rule") whose Service
  ports the kernel forwards to their NodePorts on the real node (nftables
  DNAT, network.py), a pass-through as GCP's network load balancer is: a
  NodePort that refuses refuses the client's own connect(), and client
  addresses outside `spec.loadBalancerSourceRanges` are refused (everyone
  is admitted when the list is empty),
- reports the address in `status.loadBalancer.ingress` after a delay.
When the Service stops being a LoadBalancer (deleted, or its type changed) it
removes the forwarding, waits the cleanup delay, forgets the forwarding rule
and only then removes the finalizer and the status.

The forwarding rules are recorded per cluster (ForwardingRules); a cluster
deleted while a rule still exists leaves that rule behind as a leak, exactly
what GKE does when a cluster goes before its LoadBalancer Services.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox.node.commands import NodeError
from sandbox.node.relay import RelayHub

log = logging.getLogger(__name__)

FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
WATCH_SECONDS = 60  # one watch request; then the watch is resumed
RETRY_SECONDS = 1.0
ADDRESS_ATTEMPTS = 64


@dataclass
class Settings:
    """The fault-injection knobs (docs/contracts.md: load_balancer, lb_delay_ms, ...)."""

    assign: bool = True
    delay_ms: int = 500
    cleanup_delay_ms: int = 500


@dataclass
class ForwardingRule:
    name: str  # GKE names a Service's LB "a" + its UID without dashes
    cluster: str
    service: str  # <namespace>/<name>
    ip: str
    ports: list[int]
    source_ranges: list[str]


class ForwardingRules:
    """Every forwarding rule of the sandbox. The ones a deleted cluster leaves behind
    (leaks) are the GKE emulator's: it lists them as compute does."""

    def __init__(self, path: Path | None = None):
        self._path = path
        self._lock = threading.Lock()
        self._rules: dict[str, ForwardingRule] = {}

    def put(self, rule: ForwardingRule) -> None:
        with self._lock:
            self._rules[rule.name] = rule
            self._save()

    def remove(self, name: str) -> None:
        with self._lock:
            self._rules.pop(name, None)
            self._save()

    def cluster_deleted(self, cluster: str) -> list[ForwardingRule]:
        """Forget the cluster's rules (their forwarding went with its node); returns them."""
        with self._lock:
            leaked = [r for r in self._rules.values() if r.cluster == cluster]
            for rule in leaked:
                del self._rules[rule.name]
            self._save()
            return leaked

    def snapshot(self) -> dict:
        with self._lock:
            return self._snapshot()

    def _save(self) -> None:
        if self._path is None:
            return
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(self._snapshot(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self._path)

    def _snapshot(self) -> dict:  # caller holds the lock
        return {"forwardingRules": [asdict(r) for r in self._rules.values()]}


def candidate_addresses(uid: str, block: int):
    """127.<block>.<1-254>.<1-254> addresses derived from the Service UID, stable per Service.

    block is the real node's slot, unique on the machine, so two clusters never
    share an address; 0 for a cluster without a real node (nothing is forwarded).
    """
    for attempt in range(ADDRESS_ATTEMPTS):
        digest = hashlib.sha256(f"{uid}/{attempt}".encode()).digest()
        yield str(
            ipaddress.IPv4Address(bytes([127, block, 1 + digest[0] % 254, 1 + digest[1] % 254]))
        )


@dataclass
class Forwarding:
    """What the kernel is told for one Service: its address, its ports' NodePorts, its ranges."""

    ip: str
    node_ports: dict[int, int]  # Service port -> NodePort on the real node
    source_ranges: list[str]


@dataclass(eq=False)
class _Balancer:
    """The live part of one Service's load balancer."""

    rule: ForwardingRule
    forwarding: Forwarding
    ready_at: float = 0.0  # monotonic time the status may show the address


@dataclass
class Cloud:
    """What every cluster shares: the relay loop, the forwarding rules, the fault knobs."""

    hub: RelayHub
    rules: ForwardingRules
    settings: Settings = field(default_factory=Settings)


class LoadBalancerController:
    """One per cluster: a watch thread and a worker thread with a delay queue."""

    def __init__(
        self,
        cluster: str,
        api_client_factory: Callable[[], client.ApiClient],
        cloud: Cloud,
        forward: Callable[[list[Forwarding]], None] | None = None,
        address_block: int = 0,
    ):
        self.cluster = cluster
        self._api_factory = api_client_factory
        self._rules = cloud.rules
        self.settings = cloud.settings
        # forward(all of the cluster's forwardings): programs the kernel (the real
        # node's network); None when the cluster has no real node to forward to.
        self._forward = forward
        self._address_block = address_block
        self._services: dict[str, dict] = {}  # key -> latest object from the watch
        self._balancers: dict[str, _Balancer] = {}
        # key -> (monotonic time to release the Service, its forwarding rule's name)
        self._closing: dict[str, tuple[float, str]] = {}
        self._queue: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_loop, name=f"lb-watch-{cluster}", daemon=True),
            threading.Thread(target=self._work_loop, name=f"lb-work-{cluster}", daemon=True),
        ]

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop watching (the cluster is going away; its forwarding goes with its node)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        # The worker wakes at once; the watch thread may sit in a read until the
        # API server goes (it checks the flag before acting on anything).
        self._threads[1].join(timeout=RETRY_SECONDS + 5)
        self._balancers.clear()

    def resync(self) -> None:
        """Settings changed: reconsider every Service now."""
        with self._cond:
            for key in self._services:
                heapq.heappush(self._queue, (0.0, key))
            self._cond.notify_all()

    # ------------------------------------------------------------ watch

    def _watch_loop(self) -> None:
        api = self._api_factory()
        core = client.CoreV1Api(api)
        resource_version = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = core.list_service_for_all_namespaces()
                    seen = {}
                    for item in listing.items:
                        obj = api.sanitize_for_serialization(item)
                        seen[_key(obj)] = obj
                    with self._cond:
                        gone = set(self._services) - set(seen)
                        self._services = seen
                        for key in set(seen) | gone:
                            heapq.heappush(self._queue, (0.0, key))
                        self._cond.notify_all()
                    resource_version = listing.metadata.resource_version
                stream = watch.Watch().stream(
                    core.list_service_for_all_namespaces,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=WATCH_SECONDS + 10,
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    obj = api.sanitize_for_serialization(event["object"])
                    resource_version = obj["metadata"]["resourceVersion"]
                    key = _key(obj)
                    with self._cond:
                        if event["type"] == "DELETED":
                            self._services.pop(key, None)
                        else:
                            self._services[key] = obj
                        heapq.heappush(self._queue, (0.0, key))
                        self._cond.notify_all()
            except ApiException as error:
                if error.status == 410:  # expired resourceVersion: list again
                    resource_version = None
                    continue
                log.warning("lb %s: watch failed: %s", self.cluster, error.reason)
                resource_version = None
                self._stop.wait(RETRY_SECONDS)
            except Exception as error:  # connection reset, API restarting: list again
                if self._stop.is_set():
                    return
                log.warning("lb %s: watch failed: %s", self.cluster, error)
                resource_version = None
                self._stop.wait(RETRY_SECONDS)

    # ------------------------------------------------------------ work

    def _work_loop(self) -> None:
        core = client.CoreV1Api(self._api_factory())
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if self._queue and self._queue[0][0] <= now:
                        _, key = heapq.heappop(self._queue)
                        obj = self._services.get(key)
                        break
                    timeout = (self._queue[0][0] - now) if self._queue else None
                    self._cond.wait(timeout)
                else:
                    return
            try:
                again = self._reconcile(core, key, obj)
            except Exception as error:  # API hiccup: try again shortly
                log.warning("lb %s: %s: %s", self.cluster, key, error)
                again = RETRY_SECONDS
            if again is not None:
                with self._cond:
                    heapq.heappush(self._queue, (time.monotonic() + again, key))
                    self._cond.notify_all()

    def _reconcile(self, core: client.CoreV1Api, key: str, obj: dict | None) -> float | None:
        """Bring one Service's load balancer to what the Service asks; seconds until next look."""
        wanted = (
            obj is not None
            and obj["spec"].get("type") == "LoadBalancer"
            and not obj["metadata"].get("deletionTimestamp")
        )
        if wanted:
            self._closing.pop(key, None)
            return self._ensure(core, key, obj)
        return self._release(core, key, obj)

    def _ensure(self, core, key: str, obj: dict) -> float | None:
        namespace, name = key.split("/", 1)
        if FINALIZER not in (obj["metadata"].get("finalizers") or []):
            _set_finalizers(core, obj, [*(obj["metadata"].get("finalizers") or []), FINALIZER])
            return None  # the watch brings the patched object back
        if not self.settings.assign:
            return None  # fault: the cloud never assigns an address
        ranges = list(obj["spec"].get("loadBalancerSourceRanges") or [])
        ports = [p for p in obj["spec"].get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        node_ports = {p["port"]: p["nodePort"] for p in ports if p.get("nodePort")}
        balancer = self._balancers.get(key) or self._open(key, obj)
        wanted = Forwarding(balancer.forwarding.ip, node_ports, ranges)
        if wanted != balancer.forwarding:  # new, or ports, NodePorts or ranges changed
            balancer.forwarding = wanted
            balancer.rule.ports = sorted(node_ports)
            balancer.rule.source_ranges = ranges
            self._rules.put(balancer.rule)
            self._program()
        remaining = balancer.ready_at - time.monotonic()
        if remaining > 0:
            return remaining
        ingress = (obj.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
        if [i.get("ip") for i in ingress] != [balancer.rule.ip]:
            core.patch_namespaced_service_status(
                name,
                namespace,
                {
                    "status": {
                        "loadBalancer": {"ingress": [{"ip": balancer.rule.ip, "ipMode": "VIP"}]}
                    }
                },
            )
        return None

    def _open(self, key: str, obj: dict) -> _Balancer:
        uid = obj["metadata"]["uid"]
        taken = {b.forwarding.ip for b in self._balancers.values()}
        address = next(
            (a for a in candidate_addresses(uid, self._address_block) if a not in taken), None
        )
        if address is None:
            raise NodeError(f"no free 127/8 address for {key} after {ADDRESS_ATTEMPTS} tries")
        rule = ForwardingRule(
            name="a" + uid.replace("-", "")[:31],
            cluster=self.cluster,
            service=key,
            ip=address,
            ports=[],
            source_ranges=[],
        )
        balancer = _Balancer(
            rule, Forwarding(address, {}, []), time.monotonic() + self.settings.delay_ms / 1000
        )
        self._balancers[key] = balancer
        log.info("lb %s: %s gets %s", self.cluster, key, address)
        return balancer

    def _program(self) -> None:
        """Tell the kernel every forwarding of the cluster (one atomic nft transaction)."""
        if self._forward is not None:
            self._forward([b.forwarding for b in self._balancers.values()])

    def _close(self, key: str) -> None:
        if self._balancers.pop(key, None) is not None:
            self._program()

    def _release(self, core, key: str, obj: dict | None) -> float | None:
        """Listeners first, then (after the cleanup delay) the rule, status and finalizer."""
        balancer = self._balancers.get(key)
        if balancer is not None:
            self._close(key)
            due = time.monotonic() + self.settings.cleanup_delay_ms / 1000
            self._closing[key] = (due, balancer.rule.name)
        if key in self._closing:
            due, rule_name = self._closing[key]
            if due > time.monotonic():
                return due - time.monotonic()
            del self._closing[key]
            self._rules.remove(rule_name)
        if obj is None:
            return None
        namespace, name = key.split("/", 1)
        ingress = (obj.get("status", {}).get("loadBalancer") or {}).get("ingress")
        if ingress and obj["spec"].get("type") != "LoadBalancer":
            core.patch_namespaced_service_status(
                name, namespace, {"status": {"loadBalancer": {"ingress": None}}}
            )
        finalizers = obj["metadata"].get("finalizers") or []
        if FINALIZER in finalizers:
            with contextlib.suppress(ApiException):  # already gone
                _set_finalizers(core, obj, [f for f in finalizers if f != FINALIZER])
        return None

    def balancers(self) -> dict[str, ForwardingRule]:
        return {key: b.rule for key, b in self._balancers.items()}

    def forwardings(self) -> list[Forwarding]:
        return [b.forwarding for b in self._balancers.values()]


def _set_finalizers(core: client.CoreV1Api, obj: dict, finalizers: list[str]) -> None:
    """Replace the list (a merge patch; a strategic one would merge into it), only if
    nobody changed the object since we read it (resourceVersion precondition)."""
    core.patch_namespaced_service(
        obj["metadata"]["name"],
        obj["metadata"]["namespace"],
        {
            "metadata": {
                "finalizers": finalizers,
                "resourceVersion": obj["metadata"]["resourceVersion"],
            }
        },
        _content_type="application/merge-patch+json",
    )


def _key(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
