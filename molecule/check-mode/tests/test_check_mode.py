"""Check mode -> apply -> apply again -> check mode again, on an empty sandbox.

Each step is one `ansible-playbook deploy.yml` and is judged by what the emulator saw
(its request log) and holds (its state), not only by `changed`. The tests run in file
order: each step starts from the state the one before left.
"""

from __future__ import annotations

import pytest

from tests.integration import harness

RUN_TIMEOUT = 600


def step(admin, label: str, tags: str | None = None, args=()) -> tuple[harness.PlaybookRun, list]:
    admin.clear_requests()
    run = harness.run_playbook("deploy.yml", tags=tags, args=args, label=label, timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.describe()
    return run, admin.requests()


@pytest.fixture(scope="module")
def record() -> dict:
    """What one step leaves for the next (the cluster as first created)."""
    return {}


def test_1_check_mode_on_an_empty_sandbox_reports_the_create_and_writes_nothing(
    admin, cluster_name, kubeconfig
):
    assert admin.clusters() == [], "the sandbox is not empty"
    kubeconfig.unlink(missing_ok=True)  # left by an earlier run of the scenario: stale
    # The whole playbook: the roles after gke_cluster skip a cluster that does not exist.
    run, calls = step(admin, "check-empty", args=["--check"])
    assert f"Would create cluster {cluster_name}" in " ".join(run.output.split())
    assert run.recap().get("changed", 0) >= 1, run.describe()
    assert calls, "the check read nothing"
    assert harness.writes(calls) == [], harness.describe_requests(calls)
    assert admin.clusters() == []
    assert not kubeconfig.exists()


def test_1b_check_mode_leaves_the_callers_play_running(admin):
    # A runbook that imports the role: its tasks after the role still run in check
    # mode when the cluster does not exist (no `meta: end_host` ending the play).
    report = harness.run_play(
        {
            "name": "A runbook around gke_cluster",
            "gather_facts": False,
            "roles": ["gke_cluster"],
            "tasks": [
                {
                    "name": "After the role",
                    "ansible.builtin.debug": {"msg": "{{ gke_cluster_status }}"},
                }
            ],
        },
        label="check-runbook",
        args=["--check"],
    )
    after = [
        task["hosts"]["localhost"]
        for play in report["plays"]
        for task in play["tasks"]
        if task["task"]["name"] == "After the role"
    ]
    assert [result.get("msg") for result in after] == ["ABSENT"], report["stats"]
    assert admin.clusters() == []


def test_2_converge_creates_the_cluster_and_its_pool(admin, cluster_name, settings, record):
    run, calls = step(admin, "converge", tags="cluster")
    assert run.recap().get("changed", 0) >= 1, run.describe()
    created = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in harness.writes(calls)]
    # One request: the cluster with its node pool (no bootstrap pool to delete).
    assert created == [("POST", "clusters")], harness.describe_requests(calls)
    cluster = admin.cluster(cluster_name)
    assert cluster["status"] == "RUNNING"
    assert [p["name"] for p in cluster["nodePools"]] == [settings["gke_cluster_node_pool_name"]]
    record.update(cluster)


def test_3_converge_again_changes_and_writes_nothing(admin, cluster_name, kubeconfig, record):
    before = kubeconfig.stat().st_mtime_ns
    run, calls = step(admin, "converge-again", tags="cluster")
    assert run.recap().get("changed") == 0, run.describe()
    assert harness.writes(calls) == [], harness.describe_requests(calls)
    assert admin.cluster(cluster_name)["id"] == record["id"]
    assert kubeconfig.stat().st_mtime_ns == before


def test_4_check_mode_again_changes_and_writes_nothing(admin, cluster_name, kubeconfig, record):
    before = kubeconfig.stat().st_mtime_ns
    run, calls = step(admin, "check-converged", tags="cluster", args=["--check"])
    assert run.recap().get("changed") == 0, run.describe()
    assert "Would create" not in run.output
    assert harness.writes(calls) == [], harness.describe_requests(calls)
    assert admin.cluster(cluster_name)["id"] == record["id"]
    assert kubeconfig.stat().st_mtime_ns == before
