"""wait_for_nodes against a fake API server (fake_watch.FakeClusterApi for the Nodes)."""

from __future__ import annotations

import functools

import pytest
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import WaitFailure
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import TaskFailure
from ansible_collections.dask_gke.core.plugins.modules import wait_for_nodes
from fake_watch import Advance, FakeClock, FakeClusterApi, event
from kube_lists import object_list
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

POOL = "cloud.google.com/gke-nodepool=dask-pool"


def node(name, rv, ready=True, reason=None, message=None):
    conditions = [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"}
    ]
    if ready is not None:
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": reason or ("KubeletReady" if ready else "KubeletNotReady"),
                "message": message or "",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "resourceVersion": str(rv),
            "labels": {"cloud.google.com/gke-nodepool": "dask-pool"},
        },
        "status": {"conditions": conditions},
    }


node_list = functools.partial(object_list, "NodeList")


def refused():
    """What urllib3 raises when the API server's port refuses the connection."""
    return MaxRetryError(
        None, "/api/v1/nodes", NewConnectionError(None, "[Errno 111] Connection refused")
    )


def params(**overrides):
    base = {"label_selector": POOL, "min_ready": 1, "timeout": 60}
    base.update(overrides)
    return base


def waiter_for(api, check_mode=False, **overrides):
    return wait_for_nodes.NodeWaiter(
        lambda: api, params(**overrides), check_mode=check_mode, clock=api.clock
    )


@pytest.fixture(autouse=True)
def fake_sleep(monkeypatch):
    """Backoff sleeps advance the fake clock of the test (set .clock) instead of waiting."""
    state = {"clock": None, "sleeps": []}

    def sleep(seconds):
        state["sleeps"].append(round(seconds, 3))
        if state["clock"] is not None:
            state["clock"].advance(seconds)

    monkeypatch.setattr(wait_for_nodes.time, "sleep", sleep)
    return state


def test_enough_ready_nodes_in_the_list_return_without_watching():
    api = FakeClusterApi(
        FakeClock(),
        [node_list(100, node("n-0", 90), node("n-1", 91, ready=False), node("n-2", 92))],
    )
    waiter = waiter_for(api, min_ready=2)
    waiter.wait()
    result = waiter.result()
    assert api.watch_calls() == []
    assert api.calls[0][1]["label_selector"] == POOL
    assert result["nodes"] == 3
    assert result["ready"] == 2
    assert result["ready_nodes"] == ["n-0", "n-2"]
    assert waiter.pending() == [{"name": "n-1", "reason": "KubeletNotReady", "message": ""}]


def test_a_node_turning_ready_during_the_watch_ends_the_wait():
    api = FakeClusterApi(
        FakeClock(),
        [node_list(100, node("n-0", 90), node("n-1", 91, ready=False))],
        watches=[
            [
                Advance(2.0),
                event("ADDED", node("n-2", 101, ready=None)),
                Advance(1.0),
                event("MODIFIED", node("n-1", 102)),
                event("MODIFIED", node("n-2", 103)),  # not read: two of two are enough
            ]
        ],
    )
    waiter = waiter_for(api, min_ready=2)
    waiter.wait()
    result = waiter.result()
    (watch,) = api.watch_calls()
    assert watch["resource_version"] == "100"
    assert watch["label_selector"] == POOL
    assert result["ready_nodes"] == ["n-0", "n-1"]
    assert result["nodes"] == 3
    assert result["elapsed"] == 3.0
    assert waiter.seen["n-1"][0] == 3.0


def test_connection_refused_at_first_is_retried_until_the_api_server_answers(fake_sleep):
    clock = FakeClock()
    fake_sleep["clock"] = clock
    api = FakeClusterApi(
        clock,
        [
            refused(),
            ApiException(status=503, reason="Service Unavailable"),
            node_list(100, node("n-0", 90, ready=False)),
        ],
        watches=[
            ApiException(status=500, reason="Internal Server Error"),
            [event("MODIFIED", node("n-0", 101))],
        ],
    )
    connects = []

    def connect():
        connects.append(clock())
        if len(connects) == 1:
            raise TaskFailure("Could not connect to the Kubernetes API") from refused()
        return api

    waiter = wait_for_nodes.NodeWaiter(connect, params(), clock=clock)
    waiter.wait()
    assert len(connects) == 2
    assert [kind for kind, _ in api.calls] == ["list", "list", "list", "watch", "watch"]
    assert fake_sleep["sleeps"] == [0.2, 0.2, 0.4]
    assert waiter.result()["ready_nodes"] == ["n-0"]
    assert waiter.reconnects == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_refusals_fail_at_once(status, fake_sleep):
    api = FakeClusterApi(FakeClock(), [ApiException(status=status, reason="Forbidden")])
    waiter = waiter_for(api)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    assert f"Could not list nodes in the cluster: HTTP {status} Forbidden" in str(failure.value)
    assert len(api.calls) == 1
    assert fake_sleep["sleeps"] == []


def test_a_refused_watch_fails_at_once():
    api = FakeClusterApi(
        FakeClock(),
        [node_list(100, node("n-0", 90, ready=False))],
        watches=[ApiException(status=403, reason="Forbidden")],
    )
    with pytest.raises(WaitFailure, match="Watching nodes in the cluster failed: HTTP 403"):
        waiter_for(api).wait()


def test_timeout_names_the_nodes_that_are_not_ready():
    api = FakeClusterApi(
        FakeClock(),
        [
            node_list(
                100,
                node("n-0", 90),
                node("n-1", 91, ready=False, message="container runtime network not ready"),
                node("n-2", 92, ready=None),
            )
        ],
    )
    waiter = waiter_for(api, min_ready=3, timeout=30)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    assert str(failure.value) == (
        "3 node(s) registered, 1 Ready (expected at least 3) after 30 s; not Ready: "
        "n-1 (KubeletNotReady: container runtime network not ready); "
        "n-2 (NoReadyCondition: the node reports no Ready condition yet)."
    )


def test_timeout_without_an_answer_says_so_with_the_last_error(fake_sleep):
    clock = FakeClock()
    fake_sleep["clock"] = clock
    api = FakeClusterApi(clock, [refused() for _ in range(100)])
    waiter = waiter_for(api, timeout=5)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    message = str(failure.value)
    assert message.startswith("The API server never answered within 5 s; last error: MaxRetryError")
    assert "Connection refused" in message
    assert waiter.result()["nodes"] is None
    assert max(fake_sleep["sleeps"]) == 2.0


def test_check_mode_lists_once_and_reports_without_waiting():
    api = FakeClusterApi(FakeClock(), [node_list(100, node("n-0", 90, ready=False))])
    waiter = waiter_for(api, check_mode=True)
    waiter.wait()
    assert [kind for kind, _ in api.calls] == ["list"]
    assert waiter.result()["nodes"] == 1
    assert waiter.result()["ready"] == 0


# -- main(), as Ansible runs the module -----------------------------------------------


@pytest.fixture
def fake_cluster(monkeypatch):
    def install(api):
        monkeypatch.setattr(wait_for_nodes, "dynamic_client", lambda _params: "dynamic-client")
        monkeypatch.setattr(
            wait_for_nodes,
            "ClusterResource",
            lambda client, group_version, plural: (
                api if (group_version, plural) == ("v1", "nodes") else None
            ),
        )
        monkeypatch.setattr(
            wait_for_nodes,
            "NodeWaiter",
            functools.partial(wait_for_nodes.NodeWaiter, clock=api.clock),
        )
        return api

    return install


def test_module_returns_the_counts(run_module, fake_cluster):
    fake_cluster(FakeClusterApi(FakeClock(), [node_list(100, node("n-0", 90), node("n-1", 91))]))
    outcome, result, _ = run_module(wait_for_nodes.main, {"label_selector": POOL, "min_ready": 2})
    assert outcome == "exit"
    assert result["changed"] is False
    assert (result["nodes"], result["ready"], result["ready_nodes"]) == (2, 2, ["n-0", "n-1"])
    assert result["pending"] == []


def test_module_timeout_fails_with_the_counts(run_module, fake_cluster):
    fake_cluster(FakeClusterApi(FakeClock(), [node_list(100, node("n-0", 90, ready=False))]))
    outcome, result, _ = run_module(wait_for_nodes.main, {"label_selector": POOL, "timeout": 10})
    assert outcome == "fail"
    assert result["msg"].startswith(
        "1 node(s) registered, 0 Ready (expected at least 1) after 10 s"
    )
    assert (result["nodes"], result["ready"]) == (1, 0)
    assert result["pending"][0]["name"] == "n-0"


def test_module_check_mode_does_not_fail_when_too_few_are_ready(run_module, fake_cluster):
    api = fake_cluster(FakeClusterApi(FakeClock(), [node_list(100, node("n-0", 90, ready=False))]))
    outcome, result, _ = run_module(
        wait_for_nodes.main, {"label_selector": POOL, "min_ready": 3}, check_mode=True
    )
    assert outcome == "exit"
    assert (result["nodes"], result["ready"]) == (1, 0)
    assert api.watch_calls() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"label_selector": POOL, "min_ready": 0}, "min_ready=0 must be at least 1"),
        ({"label_selector": POOL, "min_ready": -2}, "min_ready=-2 must be at least 1"),
        ({"label_selector": POOL, "timeout": 0}, "timeout=0 must be a positive number"),
        ({"label_selector": " "}, "label_selector=' ' is empty"),
        ({}, "missing required arguments: label_selector"),
    ],
)
def test_module_argument_errors_come_before_any_api_call(run_module, fake_cluster, args, message):
    api = fake_cluster(FakeClusterApi(FakeClock(), []))
    outcome, result, _ = run_module(wait_for_nodes.main, args)
    assert outcome == "fail"
    assert message in result["msg"]
    assert api.calls == []
