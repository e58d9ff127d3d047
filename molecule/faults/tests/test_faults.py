"""GKE and LoadBalancer faults: retried, reported with GKE's words, bounded, recoverable."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from sandbox.emulator.faults import FAILED_MESSAGE
from tests.integration import harness

RUN_TIMEOUT = 600  # seconds; every bounded failure below ends far sooner
STUCK_BOUND = 10  # gke_cluster_operation_timeout of the stuck run, seconds
LB_BOUND = 10  # dask_chart_lb_timeout of the LoadBalancer run, seconds
ROLLOUT_BOUND = 10  # dask_chart_ready_timeout of the unschedulable-workers run, seconds
# Start-up, preflight and the reads before the bounded wait; generous on 2 busy cores.
RUN_OVERHEAD = 90


@pytest.fixture
def faults(admin):
    """Set fault settings for one test; afterwards no new fault fires.

    An empty PUT rather than DELETE /faults: DELETE also releases stuck operations,
    and the stuck cluster must stay stuck (not start a KWOK cluster) for the rest
    of the scenario.
    """
    yield admin.set_faults
    admin.set_faults({})


def faulted(calls: list[dict], fault: str) -> list[dict]:
    return [c for c in calls if c.get("fault") == fault]


def test_converge_retried_the_503_burst(admin, cluster_name):
    # create.yml cleared the log; prepare.yml set 3 x 503 before the converge.
    calls = admin.requests()
    burst = faulted(calls, "http_errors:503")
    assert len(burst) == 3, harness.describe_requests(calls)
    assert calls[: len(burst)] == burst, "the burst hit the converge's first calls"
    assert all(c["status"] == 503 for c in burst)
    assert any(c["status"] < 300 for c in calls[len(burst) :]), harness.describe_requests(calls)
    cluster = admin.cluster(cluster_name)
    assert cluster and cluster["status"] == "RUNNING"


def test_converge_waited_for_the_slow_create(admin, cluster_name):
    calls = admin.requests()
    slow = faulted(calls, "operations:slow")
    assert slow, f"no slow operation in the log:\n{harness.describe_requests(calls)}"
    assert slow[0]["method"] == "POST" and slow[0]["path"].endswith("/clusters")
    assert admin.cluster(cluster_name)["status"] == "RUNNING"


def test_429_burst_is_retried(admin, faults):
    admin.clear_requests()
    faults({"http_errors": {"code": 429, "count": 3}})
    run = harness.run_playbook("deploy.yml", tags="cluster", label="burst-429", timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.describe()
    calls = admin.requests()
    assert len(faulted(calls, "http_errors:429")) == 3, harness.describe_requests(calls)
    assert calls[-1]["status"] < 300, harness.describe_requests(calls)


def test_failed_create_reports_gkes_message(admin, faults):
    faults({"operations": {"mode": "fail", "count": 1, "types": ["CREATE_CLUSTER"]}})
    run = harness.run_playbook(
        "deploy.yml",
        tags="cluster",
        extra_vars={"gke_cluster_name": "fault-failed"},
        label="failed-create",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    assert FAILED_MESSAGE in run.output, run.describe()
    assert run.recap().get("failed") == 1, run.describe()


def test_stuck_operation_fails_within_its_bound(admin, faults):
    faults({"operations": {"mode": "stuck", "count": 1, "types": ["CREATE_CLUSTER"]}})
    admin.clear_requests()
    run = harness.run_playbook(
        "deploy.yml",
        tags="cluster",
        extra_vars={
            "gke_cluster_name": "fault-stuck",
            "gke_cluster_operation_timeout": STUCK_BOUND,
            "gke_cluster_operation_poll": 1,
        },
        label="stuck-operation",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    assert "CREATE_CLUSTER" in run.failure(), f"the failure names no operation:{run.describe()}"
    creates = [c for c in admin.requests() if c["method"] == "POST"]
    assert creates, "the stuck run never created its cluster"
    started = datetime.fromisoformat(creates[0]["ts"])
    waited = (run.finished - started).total_seconds()
    assert waited < STUCK_BOUND + RUN_OVERHEAD / 3, f"failed {waited:.0f}s after the create"
    assert admin.cluster("fault-stuck")["status"] == "PROVISIONING", "the fault did not hold"
    assert run.lingering() == [], "module processes outlived the failed run"


def test_load_balancer_never_assigned_names_the_services(faults):
    faults({"load_balancer": {"assign": False}})
    release = "dask-nolb"
    run = harness.run_playbook(
        "deploy.yml",
        tags="dask",
        extra_vars={
            "dask_chart_release": release,
            "dask_chart_namespace": "dask-nolb",
            "dask_chart_lb_timeout": LB_BOUND,
            "dask_chart_allowed_source_ranges": ["127.0.0.0/8"],
        },
        label="lb-never-assigned",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    failure = run.failure()
    for service in (f"{release}-scheduler", f"{release}-jupyter"):
        assert service in failure, f"{service} not named:{run.describe()}"
    # wait_for_lb_ip returns how long it waited (RETURN `elapsed`).
    waited = re.search(r"^\s+elapsed: ([0-9.]+)$", failure, re.MULTILINE)
    assert waited, f"wait_for_lb_ip reported no elapsed time:{run.describe()}"
    assert LB_BOUND <= float(waited.group(1)) < LB_BOUND + 5, "the wait ignored its timeout"
    assert run.lingering() == [], "module processes outlived the failed run"


def test_unschedulable_workers_fail_the_rollout_wait_within_its_bound(admin):
    # Workers whose nodeSelector matches no node stay Pending (the real
    # kube-scheduler of the sandbox): the rollout wait must give up at its bound
    # and say which Deployment waits for what, without a GKE call.
    release = "dask-pending"
    admin.clear_requests()
    run = harness.run_playbook(
        "deploy.yml",
        tags="dask",
        extra_vars={
            "dask_chart_release": release,
            "dask_chart_namespace": release,
            "dask_chart_ready_timeout": ROLLOUT_BOUND,
            "dask_chart_values": {"worker": {"nodeSelector": {"dask-gke/no-such-pool": "true"}}},
        },
        label="rollout-unschedulable",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    failure = " ".join(run.failure().split())  # the YAML callback folds long messages
    assert f"{release}-worker (0 of 3 updated replicas available" in failure, run.describe()
    assert f"{release}-scheduler (" not in failure, "a rolled-out Deployment was reported"
    assert "MinimumReplicasUnavailable" in failure, f"no condition quoted:{run.describe()}"
    waited = re.search(r"gave up after ([0-9.]+) s", failure)
    assert waited, f"no waited time in the failure:{run.describe()}"
    assert ROLLOUT_BOUND <= float(waited.group(1)) < ROLLOUT_BOUND + 5, "the wait ignored its bound"
    assert admin.requests() == [], "the dask tag called the GKE API"
    assert run.lingering() == [], "module processes outlived the failed run"


@pytest.fixture
def interrupted(admin, faults):
    """A deploy of a new cluster killed while GKE creates it (a slow create)."""
    name = "fault-interrupted"
    faults({"operations": {"mode": "slow", "seconds": 5, "count": 1, "types": ["CREATE_CLUSTER"]}})
    running = harness.start_playbook(
        "deploy.yml",
        extra_vars={"gke_cluster_name": name, "gke_cluster_node_count": 2},
        label="interrupted-deploy",
    )
    try:
        harness.wait_until(
            lambda: (admin.cluster(name) or {}).get("status") == "PROVISIONING",
            timeout=RUN_TIMEOUT,
            what=f"the emulator to start creating {name} (see {running.log_path})",
        )
    finally:
        running.kill()
    return name, running


def test_interrupted_deploy_converges_on_the_next_run(admin, sandbox, settings, interrupted):
    name, _ = interrupted
    run = harness.run_playbook(
        "deploy.yml",
        extra_vars={"gke_cluster_name": name, "gke_cluster_node_count": 2},
        label="after-interruption",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.describe()
    # Converged as a clean deploy would be: only the configured pool, its node count.
    cluster = admin.cluster(name)
    assert cluster["status"] == "RUNNING"
    pools = sorted(p["name"] for p in cluster["nodePools"])
    assert pools == [settings["gke_cluster_node_pool_name"]], (
        f"node pools after the re-run: {pools}"
    )
    assert int(cluster["currentNodeCount"]) == 2
    release = harness.helm_release(sandbox, harness.kubeconfig_path(name), "dask", "dask")
    assert release.get("status") == "deployed", release
