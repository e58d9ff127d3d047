"""wait_for_rollout against a fake API server (fake_watch.FakeListApi for the Deployments)."""

from __future__ import annotations

import functools

import pytest
import yaml
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import WaitFailure
from ansible_collections.dask_gke.core.plugins.modules import wait_for_rollout
from fake_watch import (
    GONE,
    HOLD,
    Advance,
    FakeClock,
    FakeListApi,
    event,
    install_fake_cluster,
    k8s_event,
)
from kube_lists import object_list
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


def with_selector(obj, **labels):
    """The Deployment with spec.selector.matchLabels (its Pods' labels)."""
    obj["spec"]["selector"] = {"matchLabels": labels or {"app": "dask", "component": "worker"}}
    return obj


def pod(name, phase="Pending", waiting=None, message="", last_exit=None, **labels):
    """A Pod of the worker Deployment; waiting: its container's waiting reason."""
    container = {"name": "dask-worker", "state": {"running": {}}}
    if waiting:
        container["state"] = {"waiting": {"reason": waiting, "message": message}}
    if last_exit is not None:
        container["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    return {
        "metadata": {"name": name, "labels": labels or {"app": "dask", "component": "worker"}},
        "status": {"phase": phase, "containerStatuses": [container]},
    }


PULL_FAILURE = 'Back-off pulling image "ghcr.io/dask/dask:2099.1.0"'


deployment_list = functools.partial(object_list, "DeploymentList", api_version="apps/v1")


def scheduler_and_worker(**worker):
    """The release at resource version 100: the scheduler (1 replica) rolled out, the worker
    Deployment as given (3 replicas all available by default)."""
    return deployment_list(
        100, deployment("dask-scheduler", 90, replicas=1), deployment("dask-worker", 91, **worker)
    )


FakeApps = FakeListApi  # the Deployments, and apps.events_api their Events


def params(**overrides):
    base = {"namespace": NS, "names": list(NAMES), "label_selector": None, "timeout": 60}
    base["pod_check_interval"] = 5
    base.update(overrides)
    return base


def waiter_for(apps, check_mode=False, **overrides):
    return wait_for_rollout.RolloutWaiter(
        apps,
        apps.events_api,
        params(**overrides),
        check_mode=check_mode,
        clock=apps.clock,
        pods=apps.pods_api,
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


# -- the Pods of a Deployment that is not rolled out --------------------------------


def stuck_worker_apps(clock, pods, watches=()):
    """A rolled-out scheduler and a worker Deployment none of whose replicas is available."""
    return FakeApps(
        clock,
        [
            deployment_list(
                100,
                deployment("dask-scheduler", 90, replicas=1),
                with_selector(deployment("dask-worker", 91, available=0)),
            )
        ],
        watches=list(watches),
        pods=pods,
    )


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_a_pod_that_cannot_pull_its_image_fails_the_wait_at_the_next_look(reason):
    clock = FakeClock()
    apps = stuck_worker_apps(clock, [pod("dask-worker-1", waiting=reason, message=PULL_FAILURE)])
    with pytest.raises(WaitFailure) as failure:
        waiter_for(apps, timeout=600).wait()
    message = str(failure.value)
    assert (
        f"Deployment 'dask-worker' in namespace dask cannot start its Pods: pod dask-worker-1 "
        f"container dask-worker: {reason}: {PULL_FAILURE}"
    ) in message
    assert "Check the image name and tag" in message
    assert clock() == pytest.approx(1005.0), "it waited past the first look at the Pods"
    looks = [kwargs for kind, kwargs in apps.calls if kind == "pods"]
    assert looks[0] == {
        "label_selector": "app=dask,component=worker",
        "field_selector": "status.phase=Pending",
    }


def test_pods_that_are_only_starting_do_not_fail_the_wait():
    clock = FakeClock()
    starting = [pod("dask-worker-1", waiting="ContainerCreating"), pod("dask-worker-2")]
    apps = stuck_worker_apps(
        clock,
        starting,
        watches=[HOLD, HOLD, [event("MODIFIED", with_selector(deployment("dask-worker", 120)))]],
    )
    waiter = waiter_for(apps, timeout=600)
    waiter.wait()
    assert sorted(waiter.result()["deployments"]) == NAMES
    assert [kind for kind, _ in apps.calls].count("pods") == 2, "one look after each quiet watch"
    assert clock() == pytest.approx(1010.0)


def test_the_watch_is_cut_to_the_pod_check_interval_only_while_pods_are_checked():
    apps = stuck_worker_apps(FakeClock(), [], watches=[HOLD])
    with pytest.raises(WaitFailure):
        waiter_for(apps, timeout=8).wait()
    assert [w["timeout_seconds"] for w in apps.watch_calls()] == [5, 3]
    unchecked = stuck_worker_apps(FakeClock(), [pod("dask-worker-1", waiting="ErrImagePull")])
    with pytest.raises(WaitFailure, match="Timed out after 8s"):
        waiter_for(unchecked, timeout=8, pod_check_interval=0).wait()
    assert [w["timeout_seconds"] for w in unchecked.watch_calls()] == [8]
    # No look while waiting; the timeout report reads the Pods once, whatever their phase.
    looks = [kwargs for kind, kwargs in unchecked.calls if kind == "pods"]
    assert looks == [{"label_selector": "app=dask,component=worker", "field_selector": None}]


def test_the_timeout_says_why_the_pods_are_not_ready():
    crashing = pod(
        "dask-worker-1",
        phase="Running",
        waiting="CrashLoopBackOff",
        message="back-off 40s restarting failed container",
        last_exit=127,
    )
    apps = stuck_worker_apps(FakeClock(), [crashing])
    waiter = waiter_for(apps, timeout=12)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    expected = (
        "pods: pod dask-worker-1 container dask-worker: CrashLoopBackOff: back-off 40s "
        "restarting failed container (last exit code 127, Error)"
    )
    assert expected in str(failure.value)
    assert waiter.timed_out_pending[0]["pods"] == [expected.removeprefix("pods: ")]


def test_an_unschedulable_pod_is_named_at_the_timeout():
    unschedulable = pod("dask-worker-1")
    unschedulable["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/5 nodes are available: 5 node(s) didn't match selector.",
            }
        ],
    }
    apps = stuck_worker_apps(FakeClock(), [unschedulable])
    with pytest.raises(WaitFailure) as failure:
        waiter_for(apps, timeout=6).wait()
    assert "pod dask-worker-1: Unschedulable: 0/5 nodes are available" in str(failure.value)


def test_rolled_out_deployments_never_list_pods():
    apps = FakeApps(
        FakeClock(),
        [
            deployment_list(
                100,
                with_selector(deployment("dask-scheduler", 90)),
                with_selector(deployment("dask-worker", 91)),
            )
        ],
        pods=[pod("dask-worker-1", waiting="ErrImagePull")],
    )
    waiter_for(apps).wait()
    assert [kind for kind, _ in apps.calls] == ["list"]
