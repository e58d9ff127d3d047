"""wait_for_rollout against a fake API server (fake_watch.FakeListApi for the Deployments)."""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import WaitFailure
from ansible_collections.dask_gke.core.plugins.modules import wait_for_rollout
from fake_watch import (
    GONE,
    Advance,
    FakeClock,
    FakeListApi,
    event,
    install_fake_cluster,
    k8s_event,
)
from urllib3.exceptions import ProtocolError, ReadTimeoutError

NS = "dask"
NAMES = ["dask-scheduler", "dask-worker"]


def deployment(
    name,
    rv,
    *,
    replicas=3,
    updated=None,
    current=None,
    available=None,
    generation=1,
    observed=None,
    conditions=(),
):
    """A Deployment as the API sends it; the status counts default to fully rolled out."""
    updated = replicas if updated is None else updated
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": str(rv),
            "generation": generation,
            "labels": {"app": "dask"},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": generation if observed is None else observed,
            "replicas": updated if current is None else current,
            "updatedReplicas": updated,
            "availableReplicas": updated if available is None else available,
            "conditions": list(conditions),
        },
    }


def deployment_list(rv, *items):
    return {
        "apiVersion": "apps/v1",
        "kind": "DeploymentList",
        "metadata": {"resourceVersion": str(rv)},
        "items": list(items),
    }


def scheduler_and_worker(**worker):
    """The release at resource version 100: the scheduler (1 replica) rolled out, the worker
    Deployment as given (3 replicas all available by default)."""
    return deployment_list(
        100, deployment("dask-scheduler", 90, replicas=1), deployment("dask-worker", 91, **worker)
    )


FakeApps = FakeListApi  # the Deployments, and apps.events_api their Events


def params(**overrides):
    base = {"namespace": NS, "names": list(NAMES), "label_selector": None, "timeout": 60}
    base.update(overrides)
    return base


def waiter_for(apps, check_mode=False, **overrides):
    return wait_for_rollout.RolloutWaiter(
        apps, apps.events_api, params(**overrides), check_mode=check_mode, clock=apps.clock
    )


DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "dask-worker-7d9c" has timed out progressing.',
}


@pytest.mark.parametrize(
    ("obj", "state", "reason"),
    [
        (deployment("d", 1), "done", "rolled out"),
        (deployment("d", 1, replicas=0), "done", "rolled out"),
        (deployment("d", 1, generation=2, observed=1), "waiting", "has not seen the latest spec"),
        (deployment("d", 1, updated=1), "waiting", "1 of 3 replicas updated"),
        (deployment("d", 1, current=5), "waiting", "2 old replicas pending termination"),
        (deployment("d", 1, available=2), "waiting", "2 of 3 updated replicas available"),
        (deployment("d", 1, updated=1, conditions=[DEADLINE]), "failed", "timed out progressing"),
    ],
)
def test_rollout_state_follows_kubectl_rollout_status(obj, state, reason):
    got_state, got_reason = wait_for_rollout.rollout_state(obj)
    assert got_state == state
    assert reason in got_reason


def test_missing_spec_replicas_means_one():
    obj = deployment("d", 1, replicas=1)
    del obj["spec"]["replicas"]
    assert wait_for_rollout.rollout_state(obj)[0] == "done"
    obj["status"]["updatedReplicas"] = 0
    assert wait_for_rollout.rollout_state(obj) == ("waiting", "0 of 1 replicas updated")


def test_rolled_out_deployments_return_without_watching():
    apps = FakeApps(
        FakeClock(),
        [scheduler_and_worker()],
    )
    waiter = waiter_for(apps)
    waiter.wait()
    assert [kind for kind, _ in apps.calls] == ["list"]
    result = waiter.result()
    assert result["deployments"]["dask-worker"] == {
        "replicas": 3,
        "updated_replicas": 3,
        "available_replicas": 3,
        "generation": 1,
        "ready_after": 0.0,
        "seen_at": result["deployments"]["dask-worker"]["seen_at"],
    }
    assert waiter.pending() == []


def test_rollout_seen_from_the_watch_in_one_list_and_one_watch_whatever_the_replicas():
    # 1000 workers becoming available one event at a time: still one LIST + one WATCH.
    clock = FakeClock()
    steps = []
    for available in range(1, 1001):
        steps.append(Advance(0.01))
        steps.append(
            event(
                "MODIFIED",
                deployment("dask-worker", 200 + available, replicas=1000, available=available),
            )
        )
    apps = FakeApps(
        clock,
        [scheduler_and_worker(replicas=1000, available=0)],
        watches=[steps],
    )
    waiter = waiter_for(apps)
    waiter.wait()
    assert [kind for kind, _ in apps.calls] == ["list", "watch"]
    assert apps.watch_calls()[0]["resource_version"] == "100"
    assert waiter.result()["deployments"]["dask-worker"]["ready_after"] == pytest.approx(10.0)


def test_a_new_generation_after_the_rollout_is_waited_for_again():
    clock = FakeClock()
    apps = FakeApps(
        clock,
        [
            deployment_list(
                100, deployment("dask-scheduler", 90, available=0), deployment("dask-worker", 91)
            )
        ],
        watches=[
            [
                event("MODIFIED", deployment("dask-worker", 101, generation=2, observed=1)),
                Advance(2),
                event("MODIFIED", deployment("dask-scheduler", 102)),
                Advance(1),
                event("MODIFIED", deployment("dask-worker", 103, generation=2)),
            ]
        ],
    )
    waiter = waiter_for(apps)
    waiter.wait()
    deployments = waiter.result()["deployments"]
    assert deployments["dask-scheduler"]["ready_after"] == pytest.approx(2.0)
    assert deployments["dask-worker"]["ready_after"] == pytest.approx(3.0)
    assert deployments["dask-worker"]["generation"] == 2


def test_missing_named_deployment_fails_at_once():
    apps = FakeApps(FakeClock(), [deployment_list(100, deployment("dask-scheduler", 90))])
    with pytest.raises(WaitFailure) as failure:
        waiter_for(apps).wait()
    assert "Deployment 'dask-worker' does not exist in namespace dask" in str(failure.value)
    assert apps.watch_calls() == []


def test_label_selector_without_deployments_fails_at_once():
    apps = FakeApps(FakeClock(), [deployment_list(100)])
    with pytest.raises(WaitFailure, match="no Deployment matches label_selector"):
        waiter_for(apps, names=None, label_selector="app=dask").wait()
    assert apps.calls[0][1]["label_selector"] == "app=dask"


def test_label_selector_waits_for_every_matching_deployment():
    apps = FakeApps(
        FakeClock(),
        [scheduler_and_worker(available=0)],
        watches=[[event("MODIFIED", deployment("dask-worker", 120))]],
    )
    waiter = waiter_for(apps, names=None, label_selector="app=dask")
    waiter.wait()
    assert sorted(waiter.result()["deployments"]) == ["dask-scheduler", "dask-worker"]
    assert all(kwargs["label_selector"] == "app=dask" for _, kwargs in apps.calls)


def test_progress_deadline_exceeded_fails_without_waiting_for_the_timeout():
    clock = FakeClock()
    apps = FakeApps(
        clock,
        [scheduler_and_worker(available=0)],
        watches=[
            [
                Advance(5),
                event(
                    "MODIFIED", deployment("dask-worker", 130, available=0, conditions=[DEADLINE])
                ),
            ]
        ],
    )
    with pytest.raises(WaitFailure) as failure:
        waiter_for(apps).wait()
    assert "'dask-worker' in namespace dask: progress deadline exceeded" in str(failure.value)
    assert clock() == pytest.approx(1005.0)


def test_named_deployment_deleted_while_waiting_fails():
    apps = FakeApps(
        FakeClock(),
        [scheduler_and_worker(available=0)],
        watches=[[event("DELETED", deployment("dask-worker", 130, available=0))]],
    )
    with pytest.raises(WaitFailure, match=r"'dask-worker' .* was deleted"):
        waiter_for(apps).wait()


def test_410_gone_lists_again_and_watches_from_the_new_version():
    apps = FakeApps(
        FakeClock(),
        [
            scheduler_and_worker(available=0),
            deployment_list(
                250,
                deployment("dask-scheduler", 90, replicas=1),
                deployment("dask-worker", 240, available=1),
            ),
        ],
        watches=[[GONE], [event("MODIFIED", deployment("dask-worker", 260))]],
    )
    waiter = waiter_for(apps)
    waiter.wait()
    assert [kind for kind, _ in apps.calls] == ["list", "watch", "list", "watch"]
    assert [w["resource_version"] for w in apps.watch_calls()] == ["100", "250"]
    assert waiter.relists == 2


def test_timeout_names_what_each_deployment_waits_for_with_conditions_and_events():
    unavailable = {
        "type": "Available",
        "status": "False",
        "reason": "MinimumReplicasUnavailable",
        "message": "Deployment does not have minimum availability.",
    }
    apps = FakeApps(
        FakeClock(),
        [scheduler_and_worker(available=1, conditions=[unavailable])],
        events=[
            k8s_event(
                "Deployment",
                "dask-worker",
                "ScalingReplicaSet",
                "Scaled up to 3",
                level="Normal",
                at="14:00:00",
            )
        ],
    )
    waiter = waiter_for(apps, timeout=30)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    message = str(failure.value)
    assert message.startswith("Timed out after 30s waiting for the rollout")
    assert "dask-worker (1 of 3 updated replicas available" in message
    assert "Available=False MinimumReplicasUnavailable" in message
    assert "Normal ScalingReplicaSet: Scaled up to 3" in message
    assert "dask-scheduler" not in message
    assert [p["name"] for p in waiter.timed_out_pending] == ["dask-worker"]
    assert (
        "events",
        {"field_selector": "involvedObject.kind=Deployment,involvedObject.name=dask-worker"},
    ) in apps.calls


def test_a_read_timeout_at_the_deadline_is_not_reported_as_a_watch_error():
    stalled = ReadTimeoutError(None, "/apis/apps/v1/namespaces/dask/deployments", "Read timed out.")
    dropped = ProtocolError("Connection broken")
    apps = FakeApps(
        FakeClock(),
        [scheduler_and_worker(available=0)],
        watches=[[Advance(5), dropped], [Advance(25), stalled]],
    )
    with pytest.raises(WaitFailure) as failure:
        waiter_for(apps, timeout=30).wait()
    # The drop before the deadline is news; the timeout at the deadline is the deadline.
    assert "Last watch error: ProtocolError: Connection broken." in str(failure.value)
    assert "Read timed out" not in str(failure.value)


def test_check_mode_reports_without_waiting_or_failing():
    apps = FakeApps(FakeClock(), [deployment_list(100, deployment("dask-worker", 91, available=0))])
    waiter = waiter_for(apps, check_mode=True)
    waiter.wait()
    assert apps.watch_calls() == []
    pending = {p["name"]: p["reason"] for p in waiter.pending()}
    assert pending["dask-worker"] == "0 of 3 updated replicas available"
    assert "'dask-scheduler' does not exist" in pending["dask-scheduler"]


# -- through main(), with the kubernetes.core client set-up replaced --------------


@pytest.fixture
def fake_cluster(monkeypatch):
    def install(apps):
        return install_fake_cluster(monkeypatch, wait_for_rollout, ("apps/v1", "deployments"), apps)

    return install


def test_module_returns_the_documented_keys(run_module, fake_cluster):
    listing = deployment_list(100, deployment("dask-scheduler", 90), deployment("dask-worker", 91))
    fake_cluster(FakeApps(FakeClock(), [listing]))
    outcome, result, _ = run_module(wait_for_rollout.main, {"namespace": NS, "names": NAMES})
    assert outcome == "exit"
    assert result["changed"] is False
    assert result["pending"] == []
    assert sorted(result["deployments"]) == NAMES
    assert set(result) - {"changed"} == set(yaml.safe_load(wait_for_rollout.RETURN))


def test_module_check_mode_warns_about_missing_deployments(run_module, fake_cluster):
    apps = fake_cluster(FakeApps(FakeClock(), [deployment_list(100)]))
    outcome, result, warnings = run_module(
        wait_for_rollout.main, {"namespace": NS, "names": ["dask-worker"]}, check_mode=True
    )
    assert outcome == "exit"
    assert len(warnings) == 1
    assert "'dask-worker' does not exist" in warnings[0]
    assert result["deployments"] == {}
    assert apps.watch_calls() == []


def test_module_fails_on_missing_deployment_with_pending(run_module, fake_cluster):
    fake_cluster(FakeApps(FakeClock(), [deployment_list(100, deployment("dask-scheduler", 90))]))
    outcome, result, _ = run_module(wait_for_rollout.main, {"namespace": NS, "names": NAMES})
    assert outcome == "fail"
    assert "'dask-worker' does not exist" in result["msg"]
    assert [p["name"] for p in result["pending"]] == ["dask-worker"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"names": ["a"], "timeout": -5}, "timeout=-5 must be a positive number"),
        ({"names": [""]}, "names is empty; give at least one Deployment name"),
        ({"names": ["a"], "label_selector": "app=dask"}, "mutually exclusive"),
        ({}, "one of the following is required"),
    ],
)
def test_module_argument_errors(run_module, fake_cluster, args, message):
    apps = fake_cluster(FakeApps(FakeClock(), []))
    outcome, result, _ = run_module(wait_for_rollout.main, args)
    assert outcome == "fail"
    assert message in result["msg"]
    assert apps.calls == []
