"""Bad variable sets of the cluster, Helm and teardown roles: each run fails before any GKE
call, naming the variable at fault (the chart's own bad inputs: test_chart_input.py)."""

from __future__ import annotations

import pytest

from tests.integration import harness

RUN_TIMEOUT = 180  # seconds; a preflight failure needs a few

BAD_INPUTS = [
    # (playbook, extra variables, variable the failure must name)
    pytest.param(
        "deploy.yml", {"gke_cluster_project": ""}, "gke_cluster_project", id="project-empty"
    ),
    pytest.param(
        "deploy.yml",
        {"gke_cluster_project": "My_Project"},
        "gke_cluster_project",
        id="project-not-an-id",
    ),
    pytest.param(
        "deploy.yml",
        {"gke_cluster_name": "Dask_Cluster"},
        "gke_cluster_name",
        id="cluster-name-uppercase",
    ),
    pytest.param(
        "deploy.yml", {"gke_cluster_name": "d" * 41}, "gke_cluster_name", id="cluster-name-too-long"
    ),
    pytest.param(
        "deploy.yml",
        {"gke_cluster_location": "the moon"},
        "gke_cluster_location",
        id="location-not-a-zone",
    ),
    pytest.param(
        "deploy.yml",
        {"gke_cluster_machine_type": "huge machine"},
        "gke_cluster_machine_type",
        id="machine-type-invalid",
    ),
    pytest.param(
        "deploy.yml", {"gke_cluster_node_count": 0}, "gke_cluster_node_count", id="node-count-zero"
    ),
    pytest.param(
        "deploy.yml",
        {"gke_cluster_node_count": "five"},
        "gke_cluster_node_count",
        id="node-count-not-a-number",
    ),
    pytest.param(
        "deploy.yml",
        {"gke_cluster_operation_timeout": 0},
        "gke_cluster_operation_timeout",
        id="operation-timeout-zero",
    ),
    pytest.param(
        "deploy.yml", {"helm_tiller_helm_major": 2}, "helm_tiller_helm_major", id="helm-major-2"
    ),
    pytest.param(
        "deploy.yml",
        {"helm_tiller_rbac_scope": "everything"},
        "helm_tiller_rbac_scope",
        id="tiller-rbac-scope-invalid",
    ),
    pytest.param("cleanup.yml", {}, "cleanup_confirm_cluster", id="cleanup-unconfirmed"),
    pytest.param(
        "cleanup.yml",
        {"cleanup_confirm_cluster": "not-this-cluster"},
        "cleanup_confirm_cluster",
        id="cleanup-confirms-another-cluster",
    ),
]


def test_valid_input_passed_the_preflight_without_any_call(admin):
    # The converge ran the preflight with valid input: the control of the table below.
    calls = admin.requests()
    assert calls == [], harness.describe_requests(calls)


def test_preflight_tag_alone_checks_a_never_deployed_cluster(admin):
    # `--tags preflight` checks the inputs and stops: it needs no earlier deploy.
    admin.clear_requests()
    run = harness.deploy(
        tags="preflight",
        extra_vars={"gke_cluster_name": "never-deployed"},
        label="preflight-tag",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.describe()
    calls = admin.requests()
    assert calls == [], harness.describe_requests(calls)


@pytest.mark.parametrize(("playbook", "bad_vars", "variable"), BAD_INPUTS)
def test_bad_input_fails_before_any_call(admin, playbook, bad_vars, variable, request):
    admin.clear_requests()
    run = harness.run_playbook(
        playbook, extra_vars=bad_vars, label=request.node.callspec.id, timeout=RUN_TIMEOUT
    )
    assert run.returncode != 0, f"accepted {bad_vars}:{run.describe()}"
    assert run.failure(), f"no failure message:{run.describe()}"
    assert variable in run.failure(), f"the failure does not name {variable}:{run.describe()}"
    calls = admin.requests()
    assert calls == [], f"GKE API called despite bad input:\n{harness.describe_requests(calls)}"
