"""gke_cluster's drift report (tasks/drift.yml) runs for real on the controller, given a node
pool as GKE's listing returns it: no drift is silent, drift fails naming each difference, or
with gke_cluster_drift_action=warn is shown and the run carries on."""

from __future__ import annotations

import json

import pytest

from tests.unit.playbooks.controller import ansible_playbook

DRIFT_PLAY = [
    {
        "name": "Report drift",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Drift",
                "ansible.builtin.include_role": {"name": "gke_cluster", "tasks_from": "drift"},
            },
            {"name": "After the report", "ansible.builtin.debug": {"msg": "run carried on"}},
        ],
    }
]
# The pool as the defaults ask for it: n1-standard-1, pd-balanced 50 GB, 5 nodes, one zone.
POOL = {
    "name": "dask-pool",
    "initialNodeCount": 5,
    "locations": ["us-central1-a"],
    "config": {"machineType": "n1-standard-1", "diskType": "pd-balanced", "diskSizeGb": 50},
}


def report(tmp_path, pool: dict, **variables):
    playbook = tmp_path / "drift.yml"
    playbook.write_text(json.dumps(DRIFT_PLAY))
    extra = tmp_path / "vars.json"
    extra.write_text(
        json.dumps(
            {"gke_cluster_project": "my-project-123", "__gke_cluster_pool": pool, **variables}
        )
    )
    run = ansible_playbook(tmp_path, "-i", "localhost,", str(playbook), "-e", f"@{extra}")
    return run, " ".join((run.stdout + run.stderr).split())


def test_a_pool_as_the_inventory_says_reports_nothing(tmp_path):
    run, output = report(tmp_path, POOL)
    assert run.returncode == 0, output
    assert "differs from the inventory" not in output
    assert "run carried on" in output


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"config": {**POOL["config"], "machineType": "e2-medium"}},
            "machine type: inventory n1-standard-1, cluster e2-medium",
        ),
        ({"initialNodeCount": 3}, "nodes per zone: inventory 5, cluster 3"),
    ],
    ids=["machine-type", "node-count"],
)
def test_drift_fails_naming_the_difference_and_how_to_resolve_it(tmp_path, change, named):
    run, output = report(tmp_path, {**POOL, **change})
    assert run.returncode == 2, output
    assert named in output
    assert "gcloud container clusters resize" in output
    assert "WARNING" not in output
    assert "run carried on" not in output


def test_drift_with_warn_is_shown_and_the_run_carries_on(tmp_path):
    run, output = report(tmp_path, {**POOL, "initialNodeCount": 3}, gke_cluster_drift_action="warn")
    assert run.returncode == 0, output
    assert "WARNING: Cluster dask (node pool dask-pool) differs from the inventory" in output
    assert "nodes per zone: inventory 5, cluster 3" in output
    assert "run carried on" in output
