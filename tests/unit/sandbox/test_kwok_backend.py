"""KwokBackend: naming, manifests, config rendering, and one real cluster when built."""

import ipaddress
import json
import os
import re
import ssl
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from sandbox.emulator import kwok_backend
from sandbox.emulator.daemon import Daemon, token_webhook
from sandbox.emulator.fake_backend import FakeBackend
from sandbox.emulator.kwok_backend import BackendError, KwokBackend
from sandbox.emulator.tokens import Issued
from sandbox.node.dataplane import DataPlane
from sandbox.node.runtime import REAL_NODE_LABEL
from tests.unit.sandbox.commands import run
from tests.unit.sandbox.conftest import free_port_base
from tests.unit.sandbox.tools import bin_dir as tools_bin_dir
from tests.unit.sandbox.tools import missing_tools

REPO_ROOT = Path(__file__).resolve().parents[3]
CLUSTER_ID = "dask-gke-sandbox.us-central1-a.dask"
TOOLS = (
    "kwokctl",
    "kwok",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "helm",
)


# ---------------------------------------------------------------- naming


def test_cluster_id_splits_from_the_right():
    assert kwok_backend.split_cluster_id(CLUSTER_ID) == (
        "dask-gke-sandbox",
        "us-central1-a",
        "dask",
    )
    assert kwok_backend.split_cluster_id("example.com:proj.europe-west1.c1") == (
        "example.com:proj",
        "europe-west1",
        "c1",
    )


@pytest.mark.parametrize("bad", ["dask", "p.dask", "p..dask", ".l.n"])
def test_malformed_cluster_id_is_a_backend_error(bad):
    with pytest.raises(BackendError, match=re.escape("<project>.<location>.<name>")):
        kwok_backend.split_cluster_id(bad)


def test_kwok_names_are_stable_distinct_and_valid():
    name = kwok_backend.kwok_cluster_name(CLUSTER_ID)
    assert name == kwok_backend.kwok_cluster_name(CLUSTER_ID)
    assert name.startswith("dask-")
    others = {
        kwok_backend.kwok_cluster_name(f"{project}.{location}.dask")
        for project in ("a", "b")
        for location in ("us-central1-a", "us-east1")
    }
    assert len(others) == 4
    long_name = kwok_backend.kwok_cluster_name("p.l." + "x" * 80)
    for candidate in (name, long_name, *others):
        assert len(candidate) <= 40
        assert "." not in candidate
        assert candidate.replace("-", "").isalnum()
        assert candidate == candidate.lower()


def test_node_names_are_gke_style_and_fit_a_label():
    suffixes = {kwok_backend.new_node_suffix() for _ in range(20)}
    assert len(suffixes) > 1
    assert all(len(s) == 4 and s.isalnum() and s == s.lower() for s in suffixes)
    names = {
        kwok_backend.node_name(CLUSTER_ID, pool, suffix)
        for pool in ("default-pool", "workers")
        for suffix in ("ab12", "cd34")
    }
    assert len(names) == 4
    name = kwok_backend.node_name(CLUSTER_ID, "default-pool", "ab12")
    assert name.startswith("gke-dask-default-pool-")
    assert name.endswith("-ab12")
    long = kwok_backend.node_name("p.l." + "c" * 60, "p" * 60, "wxyz")
    assert len(long) <= 63


@pytest.mark.parametrize(
    ("location", "region"), [("us-central1-a", "us-central1"), ("europe-west4", "europe-west4")]
)
def test_region_of(location, region):
    assert kwok_backend.region_of(location) == region


def test_node_manifest_carries_gke_labels_and_the_kwok_annotation():
    name = kwok_backend.node_name(CLUSTER_ID, "default-pool", "ab12")
    node = kwok_backend.node_manifest(name, CLUSTER_ID, "default-pool", "n1-standard-1", "v1.36.3")
    labels = node["metadata"]["labels"]
    assert node["metadata"]["name"] == name
    assert labels["cloud.google.com/gke-nodepool"] == "default-pool"
    assert labels["node.kubernetes.io/instance-type"] == "n1-standard-1"
    assert labels["topology.kubernetes.io/zone"] == "us-central1-a"
    assert labels["topology.kubernetes.io/region"] == "us-central1"
    assert labels["kubernetes.io/hostname"] == node["metadata"]["name"]
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"


# ---------------------------------------------------------------- tokens

WEBHOOK = kwok_backend.TokenWebhook(
    url="https://127.0.0.1:18083/sandbox/tokenreview",
    ca_file=Path("/sandbox/ca/ca.pem"),
    server_name="container.googleapis.com",
    probe_token="probe",
)


def test_token_webhook_config_points_kube_apiserver_at_the_emulator():
    config = yaml.safe_load(kwok_backend.token_webhook_kubeconfig(WEBHOOK))
    [cluster] = config["clusters"]
    assert cluster["cluster"] == {
        "server": WEBHOOK.url,
        "certificate-authority": "/sandbox/ca/ca.pem",
        "tls-server-name": "container.googleapis.com",
    }
    assert config["current-context"] == config["contexts"][0]["name"]
    assert "probe" not in kwok_backend.token_webhook_kubeconfig(WEBHOOK)


# ---------------------------------------------------------------- kwok configuration


def test_kwokctl_config_keeps_everything_on_loopback_with_stage_crd():
    config = yaml.safe_load(kwok_backend.KWOKCTL_CONFIG.read_text())
    assert config["kind"] == "KwokctlConfiguration"
    assert config["options"]["runtime"] == "binary"
    assert config["options"]["bindAddress"] == "127.0.0.1"
    assert config["options"]["enableCRDs"] == ["Stage"]
    apiserver = next(p for p in config["componentsPatches"] if p["name"] == "kube-apiserver")
    args = {arg["key"]: arg["value"] for arg in apiserver["extraArgs"]}
    assert args["advertise-address"] == "127.0.0.1"


def test_stage_files_are_kwok_stages_for_fake_nodes_and_their_pods():
    # Services are the load balancer's (sandbox/node/loadbalancer.py), not a stage's.
    stages = kwok_backend.load_stages()
    assert all(s["apiVersion"] == "kwok.x-k8s.io/v1alpha1" and s["kind"] == "Stage" for s in stages)
    names = [s["metadata"]["name"] for s in stages]
    assert len(names) == len(set(names))
    kinds = {s["spec"]["resourceRef"]["kind"] for s in stages}
    assert kinds == {"Node", "Pod"}


def test_kwok_manages_only_the_fake_nodes():
    config = yaml.safe_load(kwok_backend.KWOKCTL_CONFIG.read_text())
    kwok = next(p for p in config["componentsPatches"] if p["name"] == "kwok-controller")
    args = {arg["key"]: arg["value"] for arg in kwok["extraArgs"]}
    assert args["manage-all-nodes"] == "false"
    key, value = args["manage-nodes-with-annotation-selector"].split("=")
    assert {key: value} == kwok_backend.FAKE_NODE_ANNOTATION


def test_scheduler_prefers_the_real_node_without_requiring_it():
    config = yaml.safe_load(kwok_backend.SCHEDULER_CONFIG.read_text())
    (profile,) = config["profiles"]
    (affinity,) = [c for c in profile["pluginConfig"] if c["name"] == "NodeAffinity"]
    added = affinity["args"]["addedAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in added
    (preference,) = added["preferredDuringSchedulingIgnoredDuringExecution"]
    (expression,) = preference["preference"]["matchExpressions"]
    assert expression == {"key": REAL_NODE_LABEL, "operator": "In", "values": ["true"]}


def test_kwokctl_gets_every_binary_explicitly(tmp_path):
    bin_dir = tmp_path / "bin"
    argv = kwok_backend.kwokctl_create_argv(bin_dir, "c1", tmp_path / "webhook.yaml", "3s")
    extra_args = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--extra-args"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert argv[:3] == [str(bin_dir / "kwokctl"), "create", "cluster"]
    assert flags["--runtime"] == "binary"
    for flag, binary in [
        ("--kube-apiserver-binary", "kube-apiserver"),
        ("--kube-controller-manager-binary", "kube-controller-manager"),
        ("--kube-scheduler-binary", "kube-scheduler"),
        ("--etcd-binary", "etcd"),
        ("--kwok-controller-binary", "kwok"),
    ]:
        assert flags[flag] == str(bin_dir / binary)
    assert flags["--kubeconfig"] == ""
    assert extra_args == [
        f"kube-apiserver=authentication-token-webhook-config-file={tmp_path / 'webhook.yaml'}",
        "kube-apiserver=authentication-token-webhook-version=v1",
        "kube-apiserver=authentication-token-webhook-cache-ttl=3s",
    ]
    assert Path(flags["--config"]).is_file()


def test_tool_env_puts_our_kubectl_first_and_drops_proxies(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    env = kwok_backend.tool_env(tmp_path / "bin", tmp_path / "kwok")
    assert env["PATH"].split(":")[0] == str(tmp_path / "bin")
    assert env["KWOK_WORKDIR"] == str(tmp_path / "kwok")
    assert env["HOME"] == str(tmp_path / "kwok")
    assert env["KUBECONFIG"].startswith(str(tmp_path / "kwok"))
    assert not Path(env["KUBECONFIG"]).exists()
    assert not {key for key in env if "proxy" in key.lower()}


# ---------------------------------------------------------------- backend without a cluster


def _fake_kwokctl(bin_dir: Path, record: Path, exit_code: int) -> None:
    """A kwokctl stand-in that records argv, env and the token webhook config, then fails."""
    bin_dir.mkdir(parents=True)
    script = bin_dir / "kwokctl"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{record}.argv"\n'
        f'env > "{record}.env"\n'
        'config=$(printf "%s\\n" "$@" | sed -n "s/^kube-apiserver=.*-webhook-config-file=//p")\n'
        f'cp "$config" "{record}.webhook"\n'
        'echo "Error: simulated failure" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)


def test_failed_create_reports_kwokctl_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    record = tmp_path / "record"
    _fake_kwokctl(tmp_path / "bin", record, exit_code=3)
    backend = KwokBackend(tmp_path / "sandbox", tmp_path / "bin", WEBHOOK)
    with pytest.raises(BackendError, match=r"exit code 3.*simulated failure"):
        backend.create_cluster(CLUSTER_ID)
    argv = record.with_suffix(".argv").read_text().splitlines()
    env = dict(
        line.split("=", 1)
        for line in record.with_suffix(".env").read_text().splitlines()
        if "=" in line
    )
    assert argv[:2] == ["create", "cluster"]
    assert env["KWOK_WORKDIR"] == str(tmp_path / "sandbox" / "kwok")
    assert "HTTPS_PROXY" not in env
    webhook = yaml.safe_load(record.with_suffix(".webhook").read_text())
    assert webhook["clusters"][0]["cluster"]["server"] == WEBHOOK.url
    name = kwok_backend.kwok_cluster_name(CLUSTER_ID)
    assert not (tmp_path / "sandbox" / "kwok" / "backend" / name).exists()
    log_text = (tmp_path / "sandbox" / "logs" / f"kwok-{name}.log").read_text()
    assert "simulated failure" in log_text
    assert WEBHOOK.probe_token not in log_text
    assert backend.list_clusters() == []


def test_list_clusters_returns_emulator_ids(tmp_path):
    backend = KwokBackend(tmp_path, tmp_path / "bin", WEBHOOK)
    ours = kwok_backend.kwok_cluster_name(CLUSTER_ID)
    for name in (ours, "stray"):
        (tmp_path / "kwok" / "clusters" / name).mkdir(parents=True)
        (tmp_path / "kwok" / "clusters" / name / "kwok.yaml").write_text("{}")
    (tmp_path / "kwok" / "backend" / ours).mkdir(parents=True)
    (tmp_path / "kwok" / "backend" / ours / "cluster-id").write_text(CLUSTER_ID + "\n")
    assert backend.list_clusters() == [CLUSTER_ID, "stray"]


def test_deleting_a_missing_cluster_is_a_no_op(tmp_path):
    backend = KwokBackend(tmp_path, tmp_path / "no-bin", None)
    backend.delete_cluster(CLUSTER_ID)
    backend.delete_cluster(CLUSTER_ID)
    assert backend.list_clusters() == []


def test_node_pools_need_an_existing_cluster(tmp_path):
    backend = KwokBackend(tmp_path, tmp_path / "bin", WEBHOOK)
    with pytest.raises(BackendError, match="does not exist"):
        backend.ensure_node_pool(CLUSTER_ID, "default-pool", 3, "n1-standard-1")
    with pytest.raises(BackendError, match="does not exist"):
        backend.delete_node_pool(CLUSTER_ID, "default-pool")


def test_load_balancer_setting_is_kept_for_later_clusters(tmp_path):
    backend = KwokBackend(tmp_path, tmp_path / "bin", WEBHOOK)
    backend.set_load_balancer(False, 50, 700)
    settings = backend.data_plane.cloud.settings
    assert (settings.assign, settings.delay_ms, settings.cleanup_delay_ms) == (False, 50, 700)
    with pytest.raises(BackendError, match="negative"):
        backend.set_load_balancer(True, -1)


# ---------------------------------------------------------------- a real cluster


def _get(endpoint: str, ca_pem: str, token: str, path: str) -> dict:
    context = ssl.create_default_context(cadata=ca_pem)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(
        f"https://{endpoint}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with opener.open(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 401:  # the token was refused
            return None
        raise


def _running(pid: int) -> bool:
    """Alive and not a zombie (PID 1 here does not always reap re-parented children)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(what: str, condition, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.sandbox
@pytest.mark.skipif(
    bool(missing_tools(TOOLS)), reason=f"sandbox tools not built: {', '.join(missing_tools(TOOLS))}"
)
def test_real_cluster_lifecycle(tmp_path):  # noqa: PLR0915 - one end-to-end story
    token = "sandbox-test-token-0123456789"
    bin_dir = tools_bin_dir()
    # A daemon (fake GKE backend) only for its TokenReview webhook.
    sandbox_dir = tmp_path / "sandbox"
    sandbox_dir.mkdir()
    base = free_port_base()
    webhook = Daemon(sandbox_dir, base, FakeBackend(), token)
    webhook.start()
    # The KWOK part alone: fake nodes only (tests/unit/node covers the real node).
    backend = KwokBackend(
        sandbox_dir,
        bin_dir,
        token_webhook(sandbox_dir, base, token),
        DataPlane(sandbox_dir, bin_dir, "off"),
    )
    kubeconfig = tmp_path / "kubeconfig"
    timings = {}
    try:
        started = time.monotonic()
        access = backend.create_cluster(CLUSTER_ID)
        timings["create to ready"] = time.monotonic() - started
        assert access.endpoint.startswith("127.0.0.1:")
        assert backend.list_clusters() == [CLUSTER_ID]

        version = _get(access.endpoint, access.ca_pem, token, "/version")
        assert version["gitVersion"] == "v1.36.3"

        # An issued Google token works until it expires; then the API server refuses
        # it once its cached answer is stale (measured: 3-13 s with a 2 s cache TTL).
        webhook.tokens._issued["ya29.test"] = Issued("a@b", "", time.time() + 600)
        assert _get(access.endpoint, access.ca_pem, "ya29.test", "/api/v1/nodes")["items"] == []
        assert _get(access.endpoint, access.ca_pem, "ya29.unknown", "/version") is None
        webhook.tokens.expire_all()
        timings["expired token refused after"] = _wait(
            "the API server to refuse the expired token",
            lambda: _get(access.endpoint, access.ca_pem, "ya29.test", "/version") is None,
            30,
        )
        assert _get(access.endpoint, access.ca_pem, token, "/version")  # the static one lives

        started = time.monotonic()
        backend.ensure_node_pool(CLUSTER_ID, "default-pool", 5, "n1-standard-1")
        timings["5 nodes Ready"] = time.monotonic() - started
        nodes = _get(
            access.endpoint,
            access.ca_pem,
            token,
            "/api/v1/nodes?labelSelector=cloud.google.com/gke-nodepool%3Ddefault-pool",
        )
        first_names = {n["metadata"]["name"] for n in nodes["items"]}
        assert len(first_names) == 5
        backend.ensure_node_pool(CLUSTER_ID, "default-pool", 3, "n1-standard-1")
        kept = {
            n["metadata"]["name"]
            for n in _get(access.endpoint, access.ca_pem, token, "/api/v1/nodes")["items"]
        }
        assert len(kept) == 3
        assert kept <= first_names
        started = time.monotonic()
        backend.ensure_node_pool(CLUSTER_ID, "default-pool", 5, "n1-standard-1")
        timings["2 more nodes Ready (warm cluster)"] = time.monotonic() - started
        grown = {
            n["metadata"]["name"]
            for n in _get(access.endpoint, access.ca_pem, token, "/api/v1/nodes")["items"]
        }
        assert kept <= grown
        assert len(grown - first_names) == 2  # new nodes get new names, never reused ones

        ca_file = tmp_path / "ca.pem"
        ca_file.write_text(access.ca_pem)
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "sandbox",
                    "clusters": [
                        {
                            "name": "sandbox",
                            "cluster": {
                                "server": f"https://{access.endpoint}",
                                "certificate-authority": str(ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "sandbox", "user": {"token": token}}],
                    "contexts": [
                        {"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox"}}
                    ],
                }
            )
        )
        kubeconfig.chmod(stat.S_IRUSR | stat.S_IWUSR)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "KUBECONFIG": str(kubeconfig),
            **{
                f"HELM_{kind}_HOME": str(tmp_path / "helm" / kind.lower())
                for kind in ("CONFIG", "CACHE", "DATA")
            },
        }

        def ingress_ip(namespace: str, name: str) -> str | None:
            listed = _get(
                access.endpoint, access.ca_pem, token, f"/api/v1/namespaces/{namespace}/services"
            )
            service = next((s for s in listed["items"] if s["metadata"]["name"] == name), {})
            ingress = service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}]
            return ingress[0].get("ip")

        helms = [b for b in ("helm", "helm3") if os.access(bin_dir / b, os.X_OK)]
        for helm in helms:
            # One namespace per release: the chart's RBAC names are fixed (as upstream).
            release = f"dask-{helm}"
            started = time.monotonic()
            result = run(
                [
                    bin_dir / helm,
                    "install",
                    release,
                    str(REPO_ROOT / "sandbox/charts/dask"),
                    "--namespace",
                    release,
                    "--create-namespace",
                    "--wait",
                    "--timeout",
                    "120s",
                    "--set",
                    "scheduler.serviceType=LoadBalancer",
                    "--set",
                    "jupyter.serviceType=LoadBalancer",
                ],
                env=env,
                timeout=180,
            )
            assert result.returncode == 0, result.stderr
            timings[f"{helm} install --wait"] = time.monotonic() - started
            for service in (f"{release}-scheduler", f"{release}-jupyter"):
                if helm == "helm3":  # Helm 3's --wait includes LoadBalancer ingress
                    assert ingress_ip(release, service), f"{service}: no IP after helm3 --wait"
                else:  # Helm 4's kstatus wait does not: poll
                    _wait(f"{service} ingress", lambda r=release, s=service: ingress_ip(r, s), 20)
                ip = ingress_ip(release, service)
                assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")
        assert helms, "no helm binary built"

        def new_lb_service(name: str) -> None:
            result = run(
                [
                    bin_dir / "kubectl",
                    "-n",
                    "default",
                    "create",
                    "service",
                    "loadbalancer",
                    name,
                    "--tcp=80:8080",
                ],
                env=env,
                timeout=30,
            )
            assert result.returncode == 0, result.stderr

        new_lb_service("lb-timing")
        timings["LB IP latency (500 ms delay)"] = _wait(
            "lb-timing ingress", lambda: ingress_ip("default", "lb-timing"), 20
        )

        backend.set_load_balancer(False, 500)
        new_lb_service("lb-fault")
        time.sleep(3)
        assert ingress_ip("default", "lb-fault") is None
        backend.set_load_balancer(True, 100)
        timings["LB IP after the fault is cleared"] = _wait(
            "lb-fault ingress", lambda: ingress_ip("default", "lb-fault"), 60
        )

        lb_services = {
            (s["namespace"], s["name"]) for s in backend.load_balancer_ingresses(CLUSTER_ID)
        }
        assert ("default", "lb-fault") in lb_services
        assert (f"dask-{helms[0]}", f"dask-{helms[0]}-scheduler") in lb_services

        backend.delete_node_pool(CLUSTER_ID, "default-pool")
        assert _get(access.endpoint, access.ca_pem, token, "/api/v1/nodes")["items"] == []
    finally:
        webhook.stop()
        name = kwok_backend.kwok_cluster_name(CLUSTER_ID)
        pid_files = list((tmp_path / "sandbox/kwok/clusters" / name / "pids").glob("*.pid"))
        pids = [int(p.read_text().strip()) for p in pid_files]
        started = time.monotonic()
        backend.delete_cluster(CLUSTER_ID)
        timings["delete"] = time.monotonic() - started
        print("timings:", json.dumps({k: round(v, 2) for k, v in timings.items()}))
        print("backend timings:", json.dumps(backend.timings))
    assert pids, "kwokctl recorded no component pids"
    _wait("cluster components to exit", lambda: not [pid for pid in pids if _running(pid)], 15)
    assert not (tmp_path / "sandbox/kwok/clusters" / name).exists()
    assert backend.list_clusters() == []
