"""GKE and LoadBalancer faults: retried, reported with GKE's words, bounded, recoverable."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from sandbox.emulator.faults import FAILED_MESSAGE
from tests.integration import harness

# Runs take harness.RUN_TIMEOUT at the most; every bounded failure below ends far sooner.
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


def cluster_calls(admin, label: str, **run) -> tuple[harness.PlaybookRun, list[dict]]:
    """One deploy.yml run with a cleared request log: the run and its GKE API calls."""
    admin.clear_requests()
    result = harness.deploy(label=label, **run)
    return result, admin.requests()


def one_node_cluster(admin, name: str, label: str, pool: str | None = None) -> list[dict]:
    """Converge the one-node cluster `name` (with node pool `pool`, by default the
    scenario's) with a --tags cluster run that must succeed; return its GKE API calls."""
    pool_vars = {"gke_cluster_node_pool_name": pool} if pool else {}
    run, calls = cluster_calls(
        admin,
        label,
        tags="cluster",
        extra_vars={"gke_cluster_name": name, "gke_cluster_node_count": 1, **pool_vars},
    )
    assert run.returncode == 0, run.describe()
    return calls


def operation_named(admin, name: str) -> dict:
    return next(op for op in admin.state()["operations"] if op["name"] == name)


def test_a_node_auto_upgrade_is_neither_drift_nor_waited_for(admin, sandbox, kubeconfig, settings):
    # GKE upgrades the pool by itself: a surge node per zone for as long as it runs,
    # the pool RECONCILING. A converged run carries on: the pool's configured size is
    # unchanged, and nothing has to be written. (Cleared below: this fault may use
    # DELETE /faults, no stuck operation exists yet.)
    admin.set_faults({"background_operations": {"type": "AUTO_UPGRADE_NODES", "seconds": 600}})
    try:
        upgrade = next(
            op for op in admin.state()["operations"] if op["operationType"] == "AUTO_UPGRADE_NODES"
        )
        pool_nodes = f"cloud.google.com/gke-nodepool={settings['gke_cluster_node_pool_name']}"
        surged = harness.wait_until(
            lambda: (
                len(
                    harness.kubectl(
                        sandbox, kubeconfig, "get", "nodes", "-l", pool_nodes, "-o", "name"
                    ).stdout.split()
                )
                == int(settings["gke_cluster_node_count"]) + 1
            ),
            timeout=60,
            what="the surge node of the auto-upgrade",
        )
        assert surged
        run, calls = cluster_calls(admin, "during-auto-upgrade", tags="cluster")
        assert run.returncode == 0, run.describe()
        assert run.recap().get("changed") == 0, run.describe()
        assert harness.writes(calls) == [], harness.describe_requests(calls)
        assert operation_named(admin, upgrade["name"])["status"] == "RUNNING", (
            "the run waited for it"
        )
    finally:
        admin.clear_faults()  # ends the upgrade: the surge node goes
    harness.wait_until(
        lambda: operation_named(admin, upgrade["name"])["status"] == "DONE",
        timeout=60,
        what="the auto-upgrade to end once released",
    )


@pytest.mark.parametrize("code", [500, 502, 504])
def test_5xx_bursts_are_survived(admin, faults, code):
    faults({"http_errors": {"code": code, "count": 3}})
    run, calls = cluster_calls(admin, f"burst-{code}", tags="cluster")
    assert run.returncode == 0, run.describe()
    assert [c["status"] for c in faulted(calls, f"http_errors:{code}")] == [code] * 3
    assert calls[-1]["status"] < 300, harness.describe_requests(calls)


def test_a_background_upgrade_during_a_deploy_is_waited_for(admin, faults, settings):
    # GKE upgrades the new cluster right after creating it. The create already carried
    # the node pool, so that run has nothing more to write and carries on; the next
    # write, a second pool on the cluster, meets FAILED_PRECONDITION until it ends.
    name = "fault-upgrading"
    faults(
        {
            "background_operations": {
                "type": "UPGRADE_MASTER",
                "seconds": 60,
                "trigger": "after_create",
            }
        }
    )
    created = one_node_cluster(admin, name, "background-upgrade")
    writes = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in harness.writes(created)]
    assert writes == [("POST", "clusters")], harness.describe_requests(created)
    upgrade = next(
        op
        for op in admin.state()["operations"]
        if op["operationType"] == "UPGRADE_MASTER" and f"/clusters/{name}" in op["targetLink"]
    )
    assert upgrade["status"] == "RUNNING", "the create run waited for GKE's own upgrade"
    second = "second-pool"
    calls = one_node_cluster(admin, name, "background-upgrade-second-pool", second)
    refused = [c for c in calls if c["status"] == 400 and c["path"].endswith("/nodePools")]
    assert refused, f"no write met the upgrade:\n{harness.describe_requests(calls)}"
    upgrade = operation_named(admin, upgrade["name"])
    assert upgrade["status"] == "DONE"
    pool_created = [
        c
        for c in calls
        if c["method"] == "POST" and c["path"].endswith("/nodePools") and c["status"] == 200
    ]
    assert pool_created and pool_created[0]["ts"] >= upgrade["endTime"][:23], (
        f"the pool was created before the upgrade ended:\n{harness.describe_requests(calls)}"
    )
    pools = sorted(p["name"] for p in admin.cluster(name)["nodePools"])
    assert pools == sorted([settings["gke_cluster_node_pool_name"], second]), pools


def test_a_create_whose_answer_was_lost_is_not_failed_by_its_retry(admin, faults, settings):
    # GKE carries the create out, the caller is answered 503 (the front end gave up);
    # the retried POST is answered 409 ALREADY_EXISTS: the create of the first attempt
    # is the one to wait for, not a failure.
    name = "fault-lost-answer"
    faults(
        {"http_errors": {"code": 503, "count": 1, "match": r"^POST .*/clusters$", "after": True}}
    )
    calls = one_node_cluster(admin, name, "create-answer-lost")
    posts = [c for c in calls if c["method"] == "POST"]
    assert [(c["status"], c["fault"]) for c in posts] == [
        (503, "http_errors:503:after"),
        (409, None),
    ], harness.describe_requests(calls)
    cluster = admin.cluster(name)
    assert cluster["status"] == "RUNNING"
    assert [p["name"] for p in cluster["nodePools"]] == [settings["gke_cluster_node_pool_name"]]
    creates = [
        op
        for op in admin.state()["operations"]
        if op["operationType"] == "CREATE_CLUSTER"
        and op["targetLink"].endswith(f"/clusters/{name}")
    ]
    assert len(creates) == 1, creates


def test_a_default_pool_left_by_an_older_version_goes_after_a_retried_delete(
    admin, faults, settings
):
    # Earlier versions created clusters through google.cloud's cluster module: a
    # bootstrap default-pool, deleted after the create, left behind when that delete
    # failed. Such a cluster (made here as that module made it: initialNodeCount, no
    # nodePools) gets the role's pool and loses default-pool, whose delete is answered
    # 503 once and retried.
    name = "fault-bootstrap"
    location = harness.resolve_settings(["gke_cluster_location"])["gke_cluster_location"]
    made = harness.run_module(
        "dask_gke.core.gke_cluster_api",
        {
            "connection": {
                "project": "{{ gke_cluster_project }}",
                "location": location,
                "auth_kind": "{{ gke_cluster_auth_kind }}",
                "service_account_file": "{{ gke_cluster_service_account_file }}",
                "environment": "{{ gke_cluster_api_environment }}",
            },
            "requests": {
                "cluster": {
                    "method": "POST",
                    "url": "https://container.googleapis.com/v1/projects/{{ gke_cluster_project }}"
                    f"/locations/{location}/clusters",
                    "body": {"cluster": {"name": name, "initialNodeCount": 1}},
                }
            },
            "timeout": 120,
            "poll": 1,
        },
        "old-style-cluster",
    )
    assert not made.get("failed"), made
    assert [p["name"] for p in admin.cluster(name)["nodePools"]] == ["default-pool"]
    faults(
        {"http_errors": {"code": 503, "count": 1, "match": r"^DELETE .*/nodePools/default-pool$"}}
    )
    calls = one_node_cluster(admin, name, "bootstrap-delete-retried")
    deletes = [c for c in calls if c["method"] == "DELETE" and c["path"].endswith("/default-pool")]
    assert [c["status"] for c in deletes] == [503, 200], harness.describe_requests(calls)
    pools = [p["name"] for p in admin.cluster(name)["nodePools"]]
    assert pools == [settings["gke_cluster_node_pool_name"]], pools


def missing(project: dict, fix: str, name: str, **extra_vars) -> pytest.param:
    """A project fault, the deploy's extra variables, and the fix its failure must name."""
    return pytest.param(project, extra_vars, fix, id=name)


PREREQUISITES = [
    missing(
        {"disabled_services": ["container.googleapis.com"]},
        "gcloud services enable container.googleapis.com --project dask-gke-sandbox",
        "kubernetes-engine-api-disabled",
    ),
    missing(
        {"disabled_services": ["compute.googleapis.com"]},
        "gcloud services enable compute.googleapis.com --project dask-gke-sandbox",
        "compute-api-disabled",
    ),
    missing(
        {"quota_limits": {"CPUS": 4}},
        "Quota CPUS in region us-central1 of project dask-gke-sandbox: the node pool needs 5",
        "regional-cpu-quota",
    ),
    missing({"deny_act_as": True}, "--role=roles/iam.serviceAccountUser", "no-act-as"),
    missing(
        {"unavailable_machine_types": ["n1-standard-2"]},
        "gke_cluster_machine_type=n1-standard-2 is not offered in zone(s) us-central1-a",
        "machine-type-not-in-the-zone",
        gke_cluster_machine_type="n1-standard-2",
    ),
    missing(
        {"missing_networks": ["default"]},
        "gcloud compute networks create default --subnet-mode=auto",
        "network-missing",
    ),
]


@pytest.mark.parametrize(("project", "extra", "fix"), PREREQUISITES)
def test_a_missing_prerequisite_is_reported_before_any_create(admin, faults, project, extra, fix):
    name = "fault-prerequisite"
    faults({"project": project})
    run, calls = cluster_calls(
        admin,
        f"prerequisite-{'-'.join(sorted(project))}",
        tags="cluster",
        extra_vars={"gke_cluster_name": name, **extra},
    )
    assert run.returncode != 0, run.describe()
    assert fix in " ".join(run.failure().split()), run.describe()
    assert harness.writes(calls) == [], harness.describe_requests(calls)
    assert admin.cluster(name) is None


def test_429_burst_is_retried(admin, faults):
    admin.clear_requests()
    faults({"http_errors": {"code": 429, "count": 3}})
    run = harness.deploy(tags="cluster", label="burst-429")
    assert run.returncode == 0, run.describe()
    calls = admin.requests()
    assert len(faulted(calls, "http_errors:429")) == 3, harness.describe_requests(calls)
    assert calls[-1]["status"] < 300, harness.describe_requests(calls)


def test_failed_create_reports_gkes_message(admin, faults):
    faults({"operations": {"mode": "fail", "count": 1, "types": ["CREATE_CLUSTER"]}})
    run = harness.deploy(
        tags="cluster",
        extra_vars={"gke_cluster_name": "fault-failed"},
        label="failed-create",
    )
    assert run.returncode != 0, run.describe()
    assert FAILED_MESSAGE in run.output, run.describe()
    assert run.recap().get("failed") == 1, run.describe()


def test_stuck_operation_fails_within_its_bound(admin, faults):
    faults({"operations": {"mode": "stuck", "count": 1, "types": ["CREATE_CLUSTER"]}})
    admin.clear_requests()
    run = harness.deploy(
        tags="cluster",
        extra_vars={
            "gke_cluster_name": "fault-stuck",
            "gke_cluster_operation_timeout": STUCK_BOUND,
            "gke_cluster_operation_poll": 1,
        },
        label="stuck-operation",
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
    run = harness.deploy(
        tags="dask",
        extra_vars={
            "dask_chart_release": release,
            "dask_chart_namespace": "dask-nolb",
            "dask_chart_lb_timeout": LB_BOUND,
            "dask_chart_allowed_source_ranges": ["127.0.0.0/8"],
        },
        label="lb-never-assigned",
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
    run = harness.deploy(
        tags="dask",
        extra_vars={
            "dask_chart_release": release,
            "dask_chart_namespace": release,
            "dask_chart_ready_timeout": ROLLOUT_BOUND,
            "dask_chart_values": {"worker": {"nodeSelector": {"dask-gke/no-such-pool": "true"}}},
        },
        label="rollout-unschedulable",
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
            timeout=harness.RUN_TIMEOUT,
            what=f"the emulator to start creating {name} (see {running.log_path})",
        )
    finally:
        running.kill()
    return name, running


def test_interrupted_deploy_converges_on_the_next_run(admin, sandbox, settings, interrupted):
    name, _ = interrupted
    run = harness.deploy(
        extra_vars={"gke_cluster_name": name, "gke_cluster_node_count": 2},
        label="after-interruption",
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


def test_an_expired_token_is_refreshed_by_a_partial_run(admin, sandbox, kubeconfig):
    # An hour after the deploy the kubeconfig's bearer token has expired: a
    # `--tags upgrade` run (no cluster call) must refresh it before Helm uses it.
    before = harness.load_yaml(kubeconfig)["users"][0]["user"]["token"]
    assert admin.expire_tokens() >= 1
    harness.wait_until(
        lambda: "Unauthorized" in harness.kubectl(sandbox, kubeconfig, "get", "ns").stderr,
        timeout=60,
        what="the cluster to refuse the expired token",
    )
    run, calls = cluster_calls(admin, "upgrade-after-expiry", tags="upgrade")
    assert run.returncode == 0, run.describe()
    assert calls == [], f"--tags upgrade called the GKE API:\n{harness.describe_requests(calls)}"
    assert harness.load_yaml(kubeconfig)["users"][0]["user"]["token"] != before
    assert harness.kubectl(sandbox, kubeconfig, "get", "ns").returncode == 0
    tokens = [c for c in admin.requests(host="oauth2.googleapis.com") if c["path"] == "/token"]
    assert tokens, "no new token was asked for"


def test_cleanup_without_the_cluster_api_deletes_nothing_and_leaks_no_load_balancer(
    admin, faults, sandbox
):
    name = "fault-cleanup"
    vars_ = {"gke_cluster_name": name, "gke_cluster_node_count": 1}
    deployed = harness.deploy(extra_vars=vars_, label="cleanup-deploy")
    assert deployed.returncode == 0, deployed.describe()
    # The cluster's API server becomes unreachable from here (authorized networks,
    # a private endpoint): its LoadBalancers cannot be removed first.
    faults({"cluster_api": {"reachable": False}})
    admin.clear_requests()
    refused = harness.cleanup(name, extra_vars=vars_, label="cleanup-unreachable")
    calls = admin.requests()
    assert refused.returncode != 0, refused.describe()
    failure = " ".join(refused.failure().split())
    assert f"Refusing to tear down: cluster {name} exists but its API server" in failure
    assert "cleanup_force=true" in failure
    assert harness.writes(calls) == [], harness.describe_requests(calls)
    assert admin.cluster(name)["status"] == "RUNNING"
    # Reachable again: the teardown removes the LoadBalancers first, nothing leaks.
    faults({})
    cleaned = harness.cleanup(name, extra_vars=vars_, label="cleanup-reachable")
    assert cleaned.returncode == 0, cleaned.describe()
    assert admin.cluster(name) is None
    leaked = [r for r in admin.leaked_forwarding_rules() if r.get("cluster") == name]
    assert leaked == [], leaked
