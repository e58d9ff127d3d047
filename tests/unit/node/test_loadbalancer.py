"""The sandbox's cloud load balancer (sandbox/node/loadbalancer.py), one Service at a time.

_reconcile is driven directly with Service objects, a recording stand-in for
CoreV1Api and a recording forward() (the kernel's side is network.py's, tested
as rendered rules here and for real in test_real_node_e2e.py).
"""

import copy
import json
import time

import pytest

from sandbox.node import loadbalancer
from sandbox.node.loadbalancer import (
    FINALIZER,
    Cloud,
    Forwarding,
    ForwardingRule,
    ForwardingRules,
    LoadBalancerController,
    Settings,
    candidate_addresses,
)
from sandbox.node.relay import RelayHub

KEY = "dask/dask-scheduler"
UID = "0f0e0d0c-0b0a-0908-0706-050403020100"


class RecordingCore:
    """Records the patches the controller sends."""

    def __init__(self):
        self.patches: list[tuple[str, dict, str | None]] = []

    def patch_namespaced_service(self, name, namespace, body, _content_type=None):
        self.patches.append(("service", body, _content_type))

    def patch_namespaced_service_status(self, name, namespace, body):
        self.patches.append(("status", body, None))


@pytest.fixture
def cloud(tmp_path):
    hub = RelayHub()
    settings = Settings(delay_ms=200, cleanup_delay_ms=300)
    yield Cloud(hub, ForwardingRules(tmp_path / "rules.json"), settings)
    hub.stop()


@pytest.fixture
def programmed():
    """Every list of forwardings the controller handed to the kernel, in order."""
    return []


@pytest.fixture
def controller(cloud, programmed):
    return LoadBalancerController(
        "p.z.c", api_client_factory=None, cloud=cloud, forward=programmed.append, address_block=7
    )


def service(finalizers=(), ranges=None, node_port=31000) -> dict:
    return {
        "metadata": {
            "name": "dask-scheduler",
            "namespace": "dask",
            "uid": UID,
            "resourceVersion": "7",
            "finalizers": list(finalizers),
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [
                {"port": 8786, "nodePort": node_port, "protocol": "TCP"},
                {"port": 80, "nodePort": node_port + 1, "protocol": "TCP"},
            ],
            "loadBalancerSourceRanges": ranges or [],
        },
        "status": {"loadBalancer": {}},
    }


def test_the_finalizer_comes_before_any_forwarding(controller, programmed):
    core = RecordingCore()
    assert controller._reconcile(core, KEY, service()) is None
    ((kind, body, content_type),) = core.patches
    assert kind == "service" and content_type == "application/merge-patch+json"
    assert body["metadata"] == {"finalizers": [FINALIZER], "resourceVersion": "7"}
    assert programmed == [] and controller.balancers() == {}


def test_forwarding_first_then_the_address_after_the_delay(controller, programmed):
    core = RecordingCore()
    obj = service(finalizers=[FINALIZER], ranges=["127.0.0.1/32"])
    wait = controller._reconcile(core, KEY, obj)
    assert 0 < wait <= 0.2
    assert core.patches == []  # forwarding is programmed, the IP not announced yet
    ip = next(candidate_addresses(UID, 7))
    assert ip.startswith("127.7.")  # the real node's slot: no other cluster has it
    assert programmed == [[Forwarding(ip, {8786: 31000, 80: 31001}, ["127.0.0.1/32"])]]
    time.sleep(wait)
    assert controller._reconcile(core, KEY, obj) is None
    ((kind, body, _),) = core.patches
    assert kind == "status"
    assert body["status"]["loadBalancer"]["ingress"] == [{"ip": ip, "ipMode": "VIP"}]
    assert len(programmed) == 1  # unchanged Service: the kernel is not told again


def test_changed_ranges_or_node_ports_reprogram_the_same_address(controller, programmed, cloud):
    core = RecordingCore()
    obj = service(finalizers=[FINALIZER], ranges=["127.0.0.1/32"])
    controller._reconcile(core, KEY, obj)
    changed = copy.deepcopy(obj)
    changed["spec"]["loadBalancerSourceRanges"] = ["127.0.0.2/32"]
    changed["spec"]["ports"][0]["nodePort"] = 32000
    controller._reconcile(core, KEY, changed)
    (first,), (second,) = programmed
    assert second.ip == first.ip
    assert second.source_ranges == ["127.0.0.2/32"]
    assert second.node_ports == {8786: 32000, 80: 31001}
    rules = cloud.rules.snapshot()["forwardingRules"]
    assert [(r["source_ranges"], r["ports"]) for r in rules] == [(["127.0.0.2/32"], [80, 8786])]


def test_release_removes_forwarding_first_and_the_finalizer_after_the_delay(
    controller, programmed, cloud
):
    core = RecordingCore()
    obj = service(finalizers=[FINALIZER])
    controller._reconcile(core, KEY, obj)
    (forwarding,) = programmed[-1]
    ip = forwarding.ip
    deleted = copy.deepcopy(obj)
    deleted["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    wait = controller._reconcile(core, KEY, deleted)
    assert 0 < wait <= 0.3
    assert programmed[-1] == []  # the forwarding is gone at once
    assert [r["ip"] for r in cloud.rules.snapshot()["forwardingRules"]] == [ip]
    assert core.patches == []  # neither status nor finalizer touched yet
    time.sleep(wait)
    assert controller._reconcile(core, KEY, deleted) is None
    assert cloud.rules.snapshot()["forwardingRules"] == []
    ((kind, body, _),) = core.patches
    assert kind == "service" and body["metadata"]["finalizers"] == []


def test_no_address_while_the_cloud_assigns_none(controller, programmed, cloud):
    cloud.settings.assign = False
    core = RecordingCore()
    assert controller._reconcile(core, KEY, service(finalizers=[FINALIZER])) is None
    assert core.patches == [] and programmed == [] and controller.balancers() == {}


def test_two_services_never_share_an_address(controller, monkeypatch):
    # Both UIDs' first choice is the same address: the second Service takes its next one.
    monkeypatch.setattr(
        loadbalancer, "candidate_addresses", lambda uid, block: iter(["127.7.0.1", "127.7.0.2"])
    )
    first = service(finalizers=[FINALIZER])
    other = copy.deepcopy(first)
    other["metadata"]["name"] = "dask-jupyter"
    other["metadata"]["uid"] = "another-uid"
    controller._reconcile(RecordingCore(), KEY, first)
    controller._reconcile(RecordingCore(), "dask/dask-jupyter", other)
    addresses = {key: rule.ip for key, rule in controller.balancers().items()}
    assert addresses == {KEY: "127.7.0.1", "dask/dask-jupyter": "127.7.0.2"}


def test_rules_of_a_deleted_cluster_are_returned_and_forgotten(tmp_path):
    rules = ForwardingRules(tmp_path / "rules.json")
    rule = ForwardingRule("a1", "p.z.c", "dask/dask-scheduler", "127.1.2.3", [8786], [])
    rules.put(rule)
    rules.put(ForwardingRule("a2", "p.z.other", "dask/x", "127.1.2.4", [80], []))
    assert rules.cluster_deleted("p.z.c") == [rule]
    saved = json.loads((tmp_path / "rules.json").read_text())
    assert [r["name"] for r in saved["forwardingRules"]] == ["a2"]
    assert rules.cluster_deleted("p.z.c") == []
