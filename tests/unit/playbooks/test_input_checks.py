"""Each role checks its inputs in one controller-side task that names every bad input at once.

The roles' validate.yml run for real (no cluster, no network): several bad inputs in one run
must fail one task whose message names each of them, and never show a secret.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.playbooks.controller import ansible_playbook

VALIDATE_PLAY = [
    {
        "name": "Validate one role's inputs",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Validate",
                "ansible.builtin.include_role": {
                    "name": "{{ role_under_test }}",
                    "tasks_from": "validate",
                },
            }
        ],
    }
]
DASK_CHART_CONTEXT = {
    "dask_chart_kubeconfig": "/nonexistent/kubeconfig",
    "dask_chart_helm_version": "v4.0.0",
}


def validate(tmp_path, role: str, variables: dict, entry_point: str = "validate"):
    play = json.loads(json.dumps(VALIDATE_PLAY))
    play[0]["tasks"][0]["ansible.builtin.include_role"]["tasks_from"] = entry_point
    playbook = tmp_path / "validate.yml"
    playbook.write_text(json.dumps(play))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"role_under_test": role, **variables}))
    run = ansible_playbook(tmp_path, "-i", "localhost,", str(playbook), "-e", f"@{extra}")
    return run, " ".join((run.stdout + run.stderr).split())


@pytest.mark.parametrize(
    ("role", "variables"),
    [
        ("dask_chart", DASK_CHART_CONTEXT),
        ("gke_cluster", {"gke_cluster_project": "my-project-123"}),
        ("helm_tiller", {}),
    ],
)
def test_valid_inputs_pass(tmp_path, role, variables):
    run, output = validate(tmp_path, role, variables)
    assert run.returncode == 0, output
    assert "failed=0" in output


@pytest.mark.parametrize(
    ("role", "variables", "messages", "secret"),
    [
        pytest.param(
            "dask_chart",
            {
                **DASK_CHART_CONTEXT,
                "dask_chart_release": "Bad_Name",
                "dask_chart_version": "1.x",
                "dask_chart_lb_timeout": 0,
                "dask_chart_jupyter_password": "short7!",
            },
            [
                'dask_chart_release="Bad_Name" is not a valid name',
                'dask_chart_version="1.x" must be an exact chart version',
                "dask_chart_lb_timeout=0 must be a whole number of at least 1",
                "dask_chart_jupyter_password is too weak",
            ],
            "short7!",
            id="dask_chart",
        ),
        pytest.param(
            "dask_chart",
            {
                **DASK_CHART_CONTEXT,
                # The argument spec lets a string through as a one-item list.
                "dask_chart_allowed_source_ranges": "10.0.0.0/8",
                "dask_chart_repo_url": "helm.dask.org",
            },
            [
                "dask_chart_allowed_source_ranges must be IPv4 CIDRs with the host bits clear",
                'a YAML list is needed, not "10.0.0.0/8"',
                'dask_chart_repo_url="helm.dask.org" must be an http(s):// or oci:// URL',
            ],
            "no secret in this case",
            id="dask_chart-string-ranges",
        ),
        pytest.param(
            "gke_cluster",
            {
                "gke_cluster_project": "my-project-123",
                "gke_cluster_name": "Bad_Name",
                "gke_cluster_node_count": 0,
            },
            [
                'gke_cluster_name="Bad_Name" is not a valid GKE name',
                "gke_cluster_node_count=0 is out of range",
            ],
            "no secret in this case",
            id="gke_cluster",
        ),
        pytest.param(
            "gke_cluster",
            {
                "gke_cluster_project": "my-project-123",
                "gke_cluster_api_environment": {
                    "HTTPS_PROXY": "http://user:s3cret-proxy-pass@127.0.0.1:3128",
                    "NO_PROXY": 1,
                },
            },
            [
                "gke_cluster_api_environment must map variable names to strings;"
                " not strings: NO_PROXY"
            ],
            "s3cret-proxy-pass",
            id="gke_cluster-environment",
        ),
        pytest.param(
            "helm_tiller",
            {"helm_tiller_namespace": "Bad_Ns", "helm_tiller_legacy_client": "/opt/helm2"},
            [
                'helm_tiller_namespace="Bad_Ns" is not a valid Kubernetes name',
                'helm_tiller_legacy_client="/opt/helm2" is a Helm 2 client to check against Tiller',
            ],
            "no secret in this case",
            id="helm_tiller",
        ),
    ],
)
def test_every_bad_input_is_named_in_one_failure(tmp_path, role, variables, messages, secret):
    run, output = validate(tmp_path, role, variables)
    assert run.returncode == 2, output
    assert "failed=1" in output, output
    missing = [message for message in messages if message not in output]
    assert missing == [], output
    assert secret not in output


# Which task must fail, by entry point: `validate` (deploy.yml's pre_tasks) has no
# task repeating the spec, so its own spec must check types and choices; `main` (a
# runbook that includes a role on its own, where deploy.yml would tell the role that
# its pre_tasks checked) must still run the checks before any other task.
SPEC_TASK = "Validating arguments against arg spec 'validate'"
CHECK_TASK = "{role} : validate | Check the inputs the argument specs cannot express"


@pytest.mark.parametrize(
    ("entry_point", "role", "variables", "message", "failing_task"),
    [
        (
            "validate",
            "dask_chart",
            {**DASK_CHART_CONTEXT, "dask_chart_no_log": "sometimes"},
            "dask_chart_no_log",
            SPEC_TASK,
        ),
        (
            "validate",
            "helm_tiller",
            {"helm_tiller_leftover_action": "ignore"},
            "helm_tiller_leftover_action",
            SPEC_TASK,
        ),
        (
            "main",
            "dask_chart",
            {**DASK_CHART_CONTEXT, "dask_chart_release": "Bad_Name"},
            'dask_chart_release="Bad_Name" is not a valid name',
            CHECK_TASK,
        ),
        (
            "main",
            "helm_tiller",
            {"helm_tiller_namespace": "Bad_Ns"},
            'helm_tiller_namespace="Bad_Ns"',
            CHECK_TASK,
        ),
    ],
)
def test_each_entry_point_checks_its_inputs_first(
    tmp_path, entry_point, role, *, variables, message, failing_task
):
    run, output = validate(tmp_path, role, variables, entry_point=entry_point)
    assert run.returncode != 0, output
    assert failing_task.format(role=role) in output, output
    assert message in output
