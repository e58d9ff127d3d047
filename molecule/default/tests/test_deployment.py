"""What deploy.yml promises, read from the emulator, the cluster and Helm.

Shared by the default scenario (Helm 4) and the helm3 scenario (verifier.directory).
"""

from __future__ import annotations

import base64
import gzip
import json
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from tests.integration import harness

TUTORIAL_PASSWORD = "dask"  # noqa: S105 - the Helm 2 tutorial's public password, asserted unused
COMPONENTS = ("scheduler", "worker", "jupyter")
POOL_LABEL = "cloud.google.com/gke-nodepool"


@pytest.fixture(scope="module")
def api(kubeconfig):
    assert kubeconfig.is_file(), f"no kubeconfig at {kubeconfig}"
    return harness.kube_client(kubeconfig)


@pytest.fixture(scope="module")
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def deployments(api, namespace, release) -> dict[str, client.V1Deployment]:
    """The release's Deployments by chart component (scheduler, worker, jupyter)."""
    items = (
        client.AppsV1Api(api)
        .list_namespaced_deployment(namespace, label_selector=f"release={release}")
        .items
    )
    return {d.metadata.labels.get("component"): d for d in items}


def container_env(deployment: client.V1Deployment) -> dict[str, str]:
    container = deployment.spec.template.spec.containers[0]
    return {e.name: e.value for e in container.env or []}


def test_the_converge_created_the_cluster_and_its_pool_in_one_request(admin, cluster_name):
    # create.yml cleared the log; the converge and molecule's idempotence run followed
    # (no verifier test before this one writes).
    calls = admin.requests()
    writes = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in harness.writes(calls)]
    assert writes == [("POST", "clusters")], harness.describe_requests(calls)
    assert not [c for c in calls if "nodePools" in c["path"]], harness.describe_requests(calls)


def test_cluster_running_with_its_node_pool(admin, cluster_name, settings):
    cluster = admin.cluster(cluster_name)
    assert cluster, f"emulator has no cluster {cluster_name}: {admin.clusters()}"
    assert cluster["status"] == "RUNNING", cluster.get("statusMessage")
    expected_pool = settings["gke_cluster_node_pool_name"]
    expected_nodes = int(settings["gke_cluster_node_count"])
    pools = {p["name"]: p for p in cluster["nodePools"]}
    assert list(pools) == [expected_pool], "only the configured pool, no default-pool"
    pool = pools[expected_pool]
    assert pool["status"] == "RUNNING"
    assert int(pool["initialNodeCount"]) * len(pool["locations"]) == expected_nodes
    assert pool["config"]["machineType"] == settings["gke_cluster_machine_type"]
    assert int(cluster["currentNodeCount"]) == expected_nodes


def test_kubeconfig_is_private(host, kubeconfig):
    kubeconfig_file = host.file(str(kubeconfig))
    assert kubeconfig_file.exists
    assert kubeconfig_file.mode == 0o600


def test_nodes_of_the_pool_are_ready(core, settings):
    pool = settings["gke_cluster_node_pool_name"]
    nodes = core.list_node(label_selector=f"{POOL_LABEL}={pool}").items
    assert len(nodes) == int(settings["gke_cluster_node_count"])
    not_ready = [
        n.metadata.name
        for n in nodes
        if not any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    assert not not_ready, f"nodes not Ready: {not_ready}"


def test_release_deployed_with_the_pinned_chart(sandbox, kubeconfig, release, namespace, settings):
    entry = harness.helm_release(sandbox, kubeconfig, release, namespace)
    assert entry, f"no Helm release {release} in namespace {namespace}"
    assert entry["status"] == "deployed"
    pinned = settings["dask_chart_version"]
    assert entry["chart"] == f"{settings['dask_chart_chart_name']}-{pinned}"


def test_release_written_by_the_configured_helm_major(core, namespace, release, settings):
    stored = core.list_namespaced_secret(
        namespace, label_selector=f"owner=helm,name={release}"
    ).items
    assert stored, f"no Helm release record of {release} in {namespace}"
    latest = max(stored, key=lambda s: int(s.metadata.labels["version"]))
    # Secret data is base64 over Helm's own base64 of the gzipped release JSON.
    record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(latest.data["release"]))))
    major = int(settings["helm_tiller_helm_major"])
    # Helm 4 records how it applied the manifests (apply_method csa|ssa); Helm 3 predates it.
    assert ("apply_method" in record) == (major == 4), f"Helm {major} release: {sorted(record)}"


def test_extra_pip_packages_identical_everywhere(deployments, settings):
    assert sorted(deployments) == sorted(COMPONENTS)
    expected = settings["dask_chart_extra_pip_packages"]
    values = {name: container_env(d).get("EXTRA_PIP_PACKAGES") for name, d in deployments.items()}
    assert len(set(values.values())) == 1, f"EXTRA_PIP_PACKAGES differs: {values}"
    assert sorted(values["scheduler"].split()) == sorted(expected)


def test_images_on_one_dask_version(deployments, settings):
    tags = {
        name: d.spec.template.spec.containers[0].image.rsplit(":", 1)[-1]
        for name, d in deployments.items()
    }
    assert sorted(tags) == sorted(COMPONENTS)
    assert len(set(tags.values())) == 1, f"images on different Dask versions: {tags}"
    assert tags["scheduler"] == str(settings["dask_chart_dask_version"])


@pytest.fixture(scope="module")
def jupyter_hashes(core, namespace, release, deployments) -> list[str]:
    """Every Jupyter password hash the release hands to Jupyter (ConfigMaps, env, args)."""
    config_maps = core.list_namespaced_config_map(
        namespace, label_selector=f"release={release}"
    ).items
    texts = [value for cm in config_maps for value in (cm.data or {}).values()]
    container = deployments["jupyter"].spec.template.spec.containers[0]
    texts += [json.dumps(container_env(deployments["jupyter"]))]
    texts += [" ".join((container.command or []) + (container.args or []))]
    return sorted({h for text in texts for h in harness.jupyter_password_hashes(text)})


@pytest.fixture(scope="module")
def jupyter_password(scenario_vars, settings) -> str:
    """The scenario's password, else the one the role generated into its 0600 file."""
    configured = scenario_vars.get("dask_chart_jupyter_password")
    if configured:
        return configured
    path = harness.REPO_ROOT / settings["dask_chart_jupyter_password_file"]
    assert path.is_file(), f"no password given and none generated into {path}"
    assert path.stat().st_mode & 0o777 == 0o600, f"{path} is not private"
    return path.read_text().strip()


@pytest.fixture(scope="module")
def run_log_files(sandbox) -> list:
    """Every log file of this run: molecule's and the verifier's runs, the sandbox's logs."""
    roots = [harness.RUN_LOG_ROOT / harness.scenario_name(), harness.sandbox_dir()]
    return sorted({path for root in roots for path in root.glob("**/*.log") if path.is_file()})


def test_jupyter_password_is_not_the_tutorials(jupyter_hashes):
    assert jupyter_hashes, "found no Jupyter password hash in the release's config"
    matching = [h for h in jupyter_hashes if harness.jupyter_hash_matches(h, TUTORIAL_PASSWORD)]
    assert not matching, f"Jupyter accepts the tutorial's password {TUTORIAL_PASSWORD!r}"


def test_jupyter_password_never_logged(jupyter_password, run_log_files):
    assert run_log_files, "no log file of the run found"
    variants = harness.secret_variants(jupyter_password)
    leaks = [
        str(path)
        for path in run_log_files
        if any(v in path.read_text(errors="replace") for v in variants)
    ]
    assert not leaks, f"the Jupyter password appears in: {leaks}"


def test_jupyter_password_is_the_one_configured(jupyter_hashes, jupyter_password):
    # The control of the two tests above: the hashes found are really Jupyter's password.
    assert any(harness.jupyter_hash_matches(h, jupyter_password) for h in jupyter_hashes)


@pytest.fixture(scope="module")
def load_balancers(core, namespace, release) -> dict[str, client.V1Service]:
    services = core.list_namespaced_service(namespace, label_selector=f"release={release}").items
    return {
        s.metadata.labels.get("component"): s for s in services if s.spec.type == "LoadBalancer"
    }


def test_load_balancers_carry_source_ranges(load_balancers, settings):
    assert sorted(load_balancers) == ["jupyter", "scheduler"]
    expected = sorted(settings["dask_chart_allowed_source_ranges"])
    assert expected, "the scenario must set dask_chart_allowed_source_ranges"
    for name, service in load_balancers.items():
        assert sorted(service.spec.load_balancer_source_ranges or []) == expected, name


def test_endpoints_file_matches_the_services(load_balancers, endpoints_file, settings):
    assert endpoints_file.is_file(), f"no endpoints file at {endpoints_file}"
    endpoints = json.loads(endpoints_file.read_text())
    ips = {
        name: service.status.load_balancer.ingress[0].ip
        for name, service in load_balancers.items()
        if service.status.load_balancer and service.status.load_balancer.ingress
    }
    assert sorted(ips) == ["jupyter", "scheduler"], "LoadBalancer without an ingress IP"
    assert urlsplit(endpoints["jupyter_url"]).hostname == ips["jupyter"]
    assert urlsplit(endpoints["dashboard_url"]).hostname == ips["scheduler"]
    scheduler = urlsplit(endpoints["scheduler_address"])
    assert scheduler.hostname == ips["scheduler"]
    assert scheduler.port == 8786
    assert endpoints["dask_version"] == str(settings["dask_chart_dask_version"])
    assert endpoints["helm_version"].split(".")[0] == str(settings["helm_tiller_helm_major"])
    galaxy = harness.load_yaml(harness.REPO_ROOT / "galaxy.yml")
    assert endpoints["dask_gke_version"] == str(galaxy["version"])


def test_endpoints_file_records_the_versions_the_smoke_test_reported(endpoints_file, settings):
    # The sandbox inventory turns the smoke test on (a real node, a LoadBalancer this
    # machine reaches): the control node's client reports what every worker runs.
    smoke_test = str(settings["dask_chart_smoke_test"]).lower()
    assert smoke_test == "true", "the scenario expects the smoke test on"
    version = str(settings["dask_chart_dask_version"])
    assert json.loads(endpoints_file.read_text())["versions"] == {
        "configured": version,
        "scheduler": version,
        "workers": [version],
        "worker_count": int(settings["dask_chart_worker_replicas"]),
    }
