"""A KWOK cluster with its real node, for real: pods, Services, DNS, the load balancer,
containment, moving between pools, and a teardown that leaves nothing.

Needs root, the built sandbox tools and Debian's containerd/runc/CNI plugins; skipped
with the reason otherwise (sandbox/node/dataplane.py: real_node_capability).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import time
import urllib.request

import pytest
from kubernetes import client

from sandbox.emulator import kwok_backend
from sandbox.emulator.daemon import Daemon, token_webhook
from sandbox.emulator.fake_backend import FakeBackend
from sandbox.emulator.kwok_backend import KwokBackend
from sandbox.node import dataplane
from sandbox.node.dataplane import DataPlane, real_node_capability
from sandbox.node.netplan import NodeNetwork
from sandbox.node.runtime import REAL_NODE_LABEL
from tests.integration import harness
from tests.unit.sandbox.conftest import free_port_base
from tests.unit.sandbox.tools import bin_dir, missing_tools

CLUSTER_ID = "dask-gke-sandbox.us-central1-a.node-e2e"
POOL_LABEL = "cloud.google.com/gke-nodepool"
TOKEN = "node-e2e-token"
NAMESPACE = "e2e"
WAIT = 60  # seconds, for anything a real pod does


def _skip_reason() -> str | None:
    missing = missing_tools(("kwokctl", "kube-apiserver", "kubelet", "kube-proxy", "coredns"))
    if missing:
        return f"sandbox tools not built: {missing} (make sandbox-tools)"
    return real_node_capability(bin_dir())


pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


def wait_for(what: str, condition, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster, pool-a of 3 nodes, a web Deployment on the Dask image and its Services."""
    from sandbox import images  # noqa: PLC0415 - the image build only runs here

    sandbox_dir = tmp_path_factory.mktemp("sandbox")
    plane = DataPlane(sandbox_dir, bin_dir(), "on")
    version = images.default_dask_version()
    base = next(a for a in images.ensure_images(version) if "/dask:" in a.ref)
    plane.image_archives = lambda: [images.ensure_pause_image(), base]
    # A daemon (fake GKE backend) only for the API servers' TokenReview webhook.
    port_base = free_port_base()
    webhook = Daemon(sandbox_dir, port_base, FakeBackend(), TOKEN)
    webhook.start()
    backend = KwokBackend(
        sandbox_dir, bin_dir(), token_webhook(sandbox_dir, port_base, TOKEN), plane
    )
    try:
        backend.create_cluster(CLUSTER_ID)
        backend.ensure_node_pool(CLUSTER_ID, "pool-a", 3, "n1-standard-1")
        api = backend._api(kwok_backend.kwok_cluster_name(CLUSTER_ID))
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        client.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, web_deployment(base.ref))
        for name, port, ranges in (("web", 80, ["127.0.0.1/32"]), ("web-open", 81, [])):
            core.create_namespaced_service(NAMESPACE, web_service(name, port, ranges))
        nobody = web_service("nobody", 82, [])
        nobody["spec"]["selector"] = {"app": "none"}  # no endpoints
        core.create_namespaced_service(NAMESPACE, nobody)
        wait_for("2 web pods Ready", lambda: len(ready_pods(core)) == 2, 120)
        yield {"backend": backend, "core": core, "plane": plane, "sandbox": sandbox_dir}
    finally:
        backend.delete_cluster(CLUSTER_ID)
        plane.shutdown()
        webhook.stop()


def web_deployment(image: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["python", "-m", "http.server", "8080"],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        },
    }


def web_service(name: str, port: int, ranges: list[str]) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [{"port": port, "targetPort": 8080}],
            "loadBalancerSourceRanges": ranges,
        },
    }


def ready_pods(core) -> list:
    return [
        p
        for p in core.list_namespaced_pod(NAMESPACE, label_selector="app=web").items
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def ingress_ip(core, name: str) -> str | None:
    ingress = core.read_namespaced_service(name, NAMESPACE).status.load_balancer.ingress
    return ingress[0].ip if ingress else None


def in_pod(core, pod: str, code: str) -> str:
    return harness.python_in_pod(core, pod, NAMESPACE, code)


def real_node_network(plane) -> NodeNetwork:
    (node,) = [p.node for p in plane._planes() if p.node]
    return node.net


def test_the_pool_counts_the_real_node_as_one_of_its_nodes(cluster):
    nodes = cluster["core"].list_node(label_selector=f"{POOL_LABEL}=pool-a").items
    assert len(nodes) == 3
    real = [n for n in nodes if n.metadata.labels.get(REAL_NODE_LABEL) == "true"]
    assert len(real) == 1
    (node,) = real
    assert node.metadata.name.startswith("gke-node-e2e-pool-a-")
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "n1-standard-1"
    assert "kwok.x-k8s.io/node" not in (node.metadata.annotations or {})
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    assert internal == [real_node_network(cluster["plane"]).node_ip]


def test_pods_land_on_the_real_node_and_really_run(cluster):
    core = cluster["core"]
    real = core.list_node(label_selector=f"{REAL_NODE_LABEL}=true").items[0].metadata.name
    pods = ready_pods(core)
    assert {p.spec.node_name for p in pods} == {real}
    pod_cidr = ipaddress.ip_network(real_node_network(cluster["plane"]).pod_cidr)
    assert all(ipaddress.ip_address(p.status.pod_ip) in pod_cidr for p in pods)
    assert in_pod(core, pods[0].metadata.name, "import dask; print(dask.__version__)").strip()


def test_a_load_balancer_serves_the_allowed_sources_only(cluster):
    core = cluster["core"]
    ip = wait_for("web's LoadBalancer IP", lambda: ingress_ip(core, "web"))
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    assert wait_for(
        "HTTP 200 through the LB", lambda: opener.open(f"http://{ip}/", timeout=5).status
    )
    outside = ("127.0.0.2", 0)  # not in 127.0.0.1/32: refused at connect(), as a firewall would
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, 80), timeout=5, source_address=outside).close()
    service = core.read_namespaced_service("web", NAMESPACE)
    assert "service.kubernetes.io/load-balancer-cleanup" in service.metadata.finalizers
    rules = cluster["plane"].snapshot()["forwardingRules"]
    assert {(r["service"], r["ip"]) for r in rules} >= {(f"{NAMESPACE}/web", ip)}


def test_a_load_balancer_without_endpoints_refuses_the_connect_itself(cluster):
    """A pass-through, as GCP's: the client's connect() fails, not a later read."""
    core = cluster["core"]
    ip = wait_for("nobody's LoadBalancer IP", lambda: ingress_ip(core, "nobody"))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, 82), timeout=5).close()


def test_pods_resolve_cluster_names_the_index_and_nothing_else(cluster):
    core = cluster["core"]
    pod = ready_pods(core)[0].metadata.name
    code = (
        "import socket\n"
        "for name in ('web.e2e.svc.cluster.local', 'pypi.dask-gke.internal', 'pypi.org'):\n"
        "    try: print(name, socket.gethostbyname(name))\n"
        "    except OSError as e: print(name, 'ERROR', type(e).__name__)\n"
    )
    answers = dict(line.split(" ", 1) for line in in_pod(core, pod, code).strip().splitlines())
    cluster_ip = core.read_namespaced_service("web", NAMESPACE).spec.cluster_ip
    assert answers["web.e2e.svc.cluster.local"] == cluster_ip
    assert answers["pypi.dask-gke.internal"] == real_node_network(cluster["plane"]).gateway_ip
    assert answers["pypi.org"].startswith("ERROR")  # nothing is resolved off the machine


def test_a_pod_reaches_another_through_its_service(cluster):
    core = cluster["core"]
    pod = ready_pods(core)[0].metadata.name
    code = (
        "import urllib.request; print(urllib.request.urlopen('http://web.e2e/', timeout=5).status)"
    )
    assert in_pod(core, pod, code).strip() == "200"


def test_no_route_leads_off_the_machine(cluster):
    net = real_node_network(cluster["plane"])

    def ip(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)

    routes = ip("-n", net.netns, "route", "show").stdout
    assert "default" not in routes
    # `ip route get` asks the kernel's routing table; it sends no packet.
    for address in ("8.8.8.8", "192.0.2.1", "10.255.255.53"):
        assert ip("-n", net.netns, "route", "get", address).returncode != 0, address
    assert net.pod_cidr not in ip("route", "show").stdout  # the host cannot route to pods
    host_rules = json.loads(
        subprocess.run(
            ["nft", "-j", "list", "table", "inet", net.host_table],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    chains = {c["chain"]["name"] for c in host_rules["nftables"] if "chain" in c}
    assert chains == {"input", "forward", "lb_guard", "lb_dnat", "lb_snat"}


def test_a_deleted_service_keeps_its_finalizer_until_the_listener_is_gone(cluster):
    core, plane = cluster["core"], cluster["plane"]
    ip = wait_for("web-open's LoadBalancer IP", lambda: ingress_ip(core, "web-open"))
    plane.set_load_balancer(True, 500, 2000)
    try:
        core.delete_namespaced_service("web-open", NAMESPACE)
        held = wait_for(
            "the Service marked for deletion",
            lambda: core.read_namespaced_service("web-open", NAMESPACE).metadata.deletion_timestamp,
        )
        assert held
        wait_for("the forwarding to go", lambda: not _connects(ip, 81), 10)
        assert core.read_namespaced_service("web-open", NAMESPACE)  # still held by the finalizer
        wait_for("the Service to be gone", lambda: not _exists(core, "web-open"), 10)
        assert f"{NAMESPACE}/web-open" not in {
            r["service"] for r in plane.snapshot()["forwardingRules"]
        }
    finally:
        plane.set_load_balancer(True, 500, 500)


def test_the_real_node_moves_when_its_pool_is_deleted(cluster):
    backend, core = cluster["backend"], cluster["core"]
    backend.ensure_node_pool(CLUSTER_ID, "pool-b", 2, "n1-standard-2")
    backend.delete_node_pool(CLUSTER_ID, "pool-a")
    nodes = core.list_node().items
    assert {n.metadata.labels[POOL_LABEL] for n in nodes} == {"pool-b"}
    assert len(nodes) == 2
    (real,) = [n for n in nodes if n.metadata.labels.get(REAL_NODE_LABEL) == "true"]
    assert real.metadata.name.startswith("gke-node-e2e-pool-b-")
    assert real.metadata.labels["node.kubernetes.io/instance-type"] == "n1-standard-2"
    assert wait_for("2 web pods Ready again", lambda: len(ready_pods(core)) == 2, 120)


def test_teardown_leaks_the_rule_of_a_live_load_balancer_and_leaves_nothing_else(cluster):
    """Runs last: deletes the cluster while Service web is still a LoadBalancer."""
    backend, plane, sandbox_dir = cluster["backend"], cluster["plane"], cluster["sandbox"]
    net = real_node_network(plane)
    # What the GKE emulator records as leaked forwarding rules when the delete runs.
    live = backend.load_balancer_ingresses(CLUSTER_ID)
    assert sorted(f"{s['namespace']}/{s['name']}" for s in live) == [
        f"{NAMESPACE}/nobody",
        f"{NAMESPACE}/web",
    ]
    backend.delete_cluster(CLUSTER_ID)
    assert plane.snapshot()["forwardingRules"] == []
    assert dataplane.leftovers(sandbox_dir) == []
    assert not net.netns_path.exists()


def _connects(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def _exists(core, name: str) -> bool:
    try:
        core.read_namespaced_service(name, NAMESPACE)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
