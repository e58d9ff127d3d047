"""A regional cluster: per-zone node counts end to end, converged re-runs, then a clean teardown.

Molecule's idempotence step already re-ran the converge (changed=0); these tests look at
what was built, run it once more watching the GKE calls, and tear it down.
"""

from __future__ import annotations

import pytest

from tests.integration import harness

ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]


@pytest.fixture(scope="module")
def cluster(admin, cluster_name) -> dict:
    found = admin.cluster(cluster_name)
    assert found, f"no cluster {cluster_name} in the emulator"
    return found


def test_the_converge_created_the_cluster_and_its_pool_in_one_request(admin, cluster):
    # create.yml cleared the log; the converge and molecule's idempotence run followed.
    calls = admin.requests()
    writes = [
        (c["method"], c["path"].split("/locations/")[-1], c["status"])
        for c in harness.writes(calls)
    ]
    assert writes == [("POST", "us-central1/clusters", 200)], harness.describe_requests(calls)


def test_the_cluster_is_regional_with_one_node_per_zone(cluster, settings):
    assert cluster["location"] == "us-central1"
    [pool] = cluster["nodePools"]
    assert pool["name"] == settings["gke_cluster_node_pool_name"]
    assert sorted(pool["locations"]) == ZONES
    assert pool["initialNodeCount"] == 1
    assert cluster["currentNodeCount"] == 3


def test_kubernetes_sees_every_zone_s_node(sandbox, kubeconfig, settings):
    label = f"cloud.google.com/gke-nodepool={settings['gke_cluster_node_pool_name']}"
    nodes = harness.kubectl(sandbox, kubeconfig, "get", "nodes", "-l", label, "-o", "name")
    assert nodes.returncode == 0, nodes.stderr
    assert len(nodes.stdout.split()) == 3


def test_a_converged_rerun_makes_no_write_and_reports_no_drift(admin):
    admin.clear_requests()
    run = harness.deploy(label="rerun")
    assert run.returncode == 0, run.describe()
    assert run.recap().get("changed") == 0, run.describe()
    assert "differs from the inventory" not in run.output
    calls = admin.requests()
    assert harness.writes(calls) == [], harness.describe_requests(calls)


def test_the_plan_counts_the_nodes_of_every_zone_before_a_create(admin):
    # A check run for a cluster that does not exist prints the plan it would bill.
    admin.clear_requests()
    run = harness.deploy(
        tags="cluster",
        args=["--check"],
        extra_vars={"gke_cluster_name": "regional-plan", "gke_cluster_node_count": 2},
        label="plan",
    )
    assert run.returncode == 0, run.describe()
    text = " ".join(run.output.split())
    assert (
        "2 node(s) per zone in us-central1-a, us-central1-b, us-central1-c = 6 x n1-standard-1"
        in text
    )
    assert "300 GB of pd-balanced" in text
    assert harness.writes(admin.requests()) == []


def test_cleanup_removes_the_regional_cluster_and_leaks_nothing(admin, cluster_name, kubeconfig):
    run = harness.cleanup(cluster_name, label="cleanup")
    assert run.returncode == 0, run.describe()
    assert admin.cluster(cluster_name) is None
    assert [r for r in admin.leaked_forwarding_rules() if r.get("cluster") == cluster_name] == []
    assert not kubeconfig.exists()
