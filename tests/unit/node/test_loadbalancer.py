"""The sandbox's cloud load balancer (sandbox/node/loadbalancer.py), one Service at a time.

_reconcile is driven directly with Service objects and a recording stand-in for
CoreV1Api; the listeners are real relays on loopback, forwarding to a local
echo server that plays the node's NodePort.
"""

import copy
import json
import socket
import socketserver
import threading
import time

import pytest

from sandbox.node.loadbalancer import (
    FINALIZER,
    Cloud,
    ForwardingRule,
    ForwardingRules,
    LoadBalancerController,
    Settings,
    candidate_addresses,
)
from sandbox.node.relay import RelayHub


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"node:" + self.request.recv(64))


class RecordingCore:
    """Records patches; applies metadata patches to the object it was given."""

    def __init__(self):
        self.patches: list[tuple[str, dict, str | None]] = []

    def patch_namespaced_service(self, name, namespace, body, _content_type=None):
        self.patches.append(("service", body, _content_type))

    def patch_namespaced_service_status(self, name, namespace, body):
        self.patches.append(("status", body, None))


@pytest.fixture
def node():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.fixture
def cloud(tmp_path):
    hub = RelayHub()
    yield Cloud(
        hub, ForwardingRules(tmp_path / "rules.json"), Settings(delay_ms=200, cleanup_delay_ms=300)
    )
    hub.stop()


@pytest.fixture
def controller(cloud, node):
    lb = LoadBalancerController(
        "p.z.c", api_client_factory=None, cloud=cloud, node_address=lambda: node[0]
    )
    yield lb
    for key in list(lb.balancers()):
        lb._close(key)


def service(node_port: int, finalizers=(), ranges=None, uid="0f0e0d0c-0b0a-0908-0706-050403020100"):
    return {
        "metadata": {
            "name": "dask-scheduler",
            "namespace": "dask",
            "uid": uid,
            "resourceVersion": "7",
            "finalizers": list(finalizers),
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 8786, "nodePort": node_port, "protocol": "TCP"}],
            "loadBalancerSourceRanges": ranges or [],
        },
        "status": {"loadBalancer": {}},
    }


def talk(ip: str, port: int, source="127.0.0.1") -> bytes:
    with socket.create_connection((ip, port), timeout=5, source_address=(source, 0)) as conn:
        conn.sendall(b"ping")
        return conn.recv(64)


KEY = "dask/dask-scheduler"


def test_the_finalizer_comes_before_any_listener(controller, node):
    core = RecordingCore()
    obj = service(node[1])
    assert controller._reconcile(core, KEY, obj) is None
    ((kind, body, content_type),) = core.patches
    assert kind == "service" and content_type == "application/merge-patch+json"
    assert body["metadata"] == {"finalizers": [FINALIZER], "resourceVersion": "7"}
    assert controller.balancers() == {}


def test_an_address_is_reported_only_after_the_delay_and_then_carries_traffic(controller, node):
    core = RecordingCore()
    obj = service(node[1], finalizers=[FINALIZER])
    wait = controller._reconcile(core, KEY, obj)
    assert 0 < wait <= 0.2
    assert core.patches == []  # no status yet: the listener exists, the IP is not announced
    rule = controller.balancers()[KEY]
    assert talk(rule.ip, 8786) == b"node:ping"  # forwards to the NodePort
    time.sleep(wait)
    assert controller._reconcile(core, KEY, obj) is None
    ((kind, body, _),) = core.patches
    assert kind == "status"
    assert body["status"]["loadBalancer"]["ingress"] == [{"ip": rule.ip, "ipMode": "VIP"}]
    assert rule.ip == next(candidate_addresses(obj["metadata"]["uid"]))


def test_source_ranges_are_enforced_and_follow_changes(controller, node):
    core = RecordingCore()
    obj = service(node[1], finalizers=[FINALIZER], ranges=["127.0.0.1/32"])
    controller._reconcile(core, KEY, obj)
    ip = controller.balancers()[KEY].ip
    assert talk(ip, 8786, source="127.0.0.1") == b"node:ping"
    with pytest.raises(ConnectionResetError):
        talk(ip, 8786, source="127.0.0.2")
    changed = copy.deepcopy(obj)
    changed["spec"]["loadBalancerSourceRanges"] = ["127.0.0.2/32"]
    controller._reconcile(core, KEY, changed)
    assert controller.balancers()[KEY].ip == ip  # same forwarding rule, new firewall
    assert talk(ip, 8786, source="127.0.0.2") == b"node:ping"
    with pytest.raises(ConnectionResetError):
        talk(ip, 8786, source="127.0.0.1")
    rules = json.loads((controller._rules._path).read_text())["forwardingRules"]
    assert [r["source_ranges"] for r in rules] == [["127.0.0.2/32"]]


def test_release_closes_first_and_drops_the_finalizer_after_the_cleanup_delay(
    controller, node, cloud
):
    core = RecordingCore()
    obj = service(node[1], finalizers=[FINALIZER])
    controller._reconcile(core, KEY, obj)
    ip = controller.balancers()[KEY].ip
    deleted = copy.deepcopy(obj)
    deleted["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    wait = controller._reconcile(core, KEY, deleted)
    assert 0 < wait <= 0.3
    with pytest.raises(ConnectionRefusedError):
        talk(ip, 8786)  # the listener is gone at once
    assert [r["ip"] for r in cloud.rules.snapshot()["forwardingRules"]] == [ip]
    assert core.patches == []  # neither status nor finalizer touched yet
    time.sleep(wait)
    core.patches.clear()
    assert controller._reconcile(core, KEY, deleted) is None
    assert cloud.rules.snapshot()["forwardingRules"] == []
    ((kind, body, _),) = core.patches
    assert kind == "service" and body["metadata"]["finalizers"] == []


def test_no_address_while_the_cloud_assigns_none(controller, node, cloud):
    cloud.settings.assign = False
    core = RecordingCore()
    assert controller._reconcile(core, KEY, service(node[1], finalizers=[FINALIZER])) is None
    assert core.patches == [] and controller.balancers() == {}


def test_rules_of_a_deleted_cluster_are_leaks(tmp_path):
    rules = ForwardingRules(tmp_path / "rules.json")
    rule = ForwardingRule("a1", "p.z.c", "dask/dask-scheduler", "127.1.2.3", [8786], [])
    rules.put(rule)
    rules.put(ForwardingRule("a2", "p.z.other", "dask/x", "127.1.2.4", [80], []))
    assert rules.cluster_deleted("p.z.c") == [rule]
    saved = json.loads((tmp_path / "rules.json").read_text())
    assert [r["name"] for r in saved["forwardingRules"]] == ["a2"]
    assert [r["name"] for r in saved["leakedForwardingRules"]] == ["a1"]
