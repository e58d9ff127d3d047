"""Fault injection through the admin API: HTTP error bursts, operation faults, LB faults."""

import json
import time

import pytest

from tests.unit.sandbox.conftest import PROJECT

ZONE = "us-central1-a"


def put_faults(sandbox, settings):
    response = sandbox.plain.put(f"{sandbox.admin}/faults", json=settings, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def post_cluster(sandbox, name="dask"):
    response = sandbox.call(
        "POST", ZONE, "/clusters", json={"cluster": {"name": name, "initialNodeCount": 1}}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("code", "status"), [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")])
def test_http_error_burst_counts_down(sandbox, code, status):
    put_faults(sandbox, {"http_errors": {"code": code, "count": 2}})
    answers = [sandbox.call("GET", ZONE, "/clusters") for _ in range(3)]
    assert [a.status_code for a in answers] == [code, code, 200]
    assert answers[0].json()["error"]["status"] == status
    assert sandbox.plain.get(f"{sandbox.admin}/faults", timeout=5).json() == {}
    log = sandbox.requests_log()
    assert [e["fault"] for e in log] == [f"http_errors:{code}", f"http_errors:{code}", None]
    assert [e["status"] for e in log] == [code, code, 200]


def test_failed_operation_fault_only_hits_listed_types(sandbox):
    put_faults(sandbox, {"operations": {"mode": "fail", "count": 1, "types": ["DELETE_CLUSTER"]}})
    created = sandbox.wait_done(post_cluster(sandbox), ZONE)
    assert "error" not in created
    deleted = sandbox.wait_done(sandbox.call("DELETE", ZONE, "/clusters/dask").json(), ZONE)
    assert deleted["error"]["code"] == 13
    assert deleted["error"]["message"]
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["status"] == "ERROR"
    # The fault is used up: the retry deletes the cluster.
    retry = sandbox.wait_done(sandbox.call("DELETE", ZONE, "/clusters/dask").json(), ZONE)
    assert "error" not in retry
    faults = [e["fault"] for e in sandbox.requests_log() if e["method"] == "DELETE"]
    assert faults == ["operations:fail", None]


def test_stuck_operation_stays_running_until_faults_are_cleared(sandbox):
    put_faults(sandbox, {"operations": {"mode": "stuck", "count": 1}})
    op = post_cluster(sandbox)
    time.sleep(0.3)
    polled = sandbox.call("GET", ZONE, f"/operations/{op['name']}").json()
    assert polled["status"] == "RUNNING"
    assert sandbox.backend.calls == []
    assert sandbox.plain.delete(f"{sandbox.admin}/faults", timeout=5).status_code == 200
    done = sandbox.wait_done(op, ZONE)
    assert "error" not in done
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["status"] == "RUNNING"


def test_slow_operation_takes_the_extra_seconds(sandbox):
    put_faults(sandbox, {"operations": {"mode": "slow", "seconds": 0.5, "count": 1}})
    started = time.monotonic()
    sandbox.wait_done(post_cluster(sandbox), ZONE)
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    sandbox.wait_done(post_cluster(sandbox, "second"), ZONE)
    assert time.monotonic() - started < 0.5


def test_load_balancer_fault_is_passed_to_the_backend(sandbox):
    put_faults(
        sandbox,
        {"load_balancer": {"assign": False}, "lb_delay_ms": 50, "lb_cleanup_delay_ms": 2000},
    )
    assert sandbox.backend.load_balancer == {
        "assign": False,
        "delay_ms": 50,
        "cleanup_delay_ms": 2000,
    }
    sandbox.plain.delete(f"{sandbox.admin}/faults", timeout=5)
    assert sandbox.backend.load_balancer == {
        "assign": True,
        "delay_ms": 500,
        "cleanup_delay_ms": 500,
    }
    calls = [c for c in sandbox.backend.calls if c[0] == "set_load_balancer"]
    assert calls == [
        ("set_load_balancer", False, 50, 2000),
        ("set_load_balancer", True, 500, 500),
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {"http_errors": {"code": 418, "count": 1}},
        {"http_errors": {"code": 503, "count": 0}},
        {"http_errors": {"code": 503, "after": "yes"}},
        {"operations": {"mode": "explode"}},
        {"operations": {"mode": "fail", "types": ["REPAIR_CLUSTER"]}},
        {"load_balancer": {"assign": "no"}},
        {"surprise": True},
        [],
    ],
)
def test_invalid_fault_settings_are_rejected(sandbox, settings):
    response = sandbox.plain.put(f"{sandbox.admin}/faults", json=settings, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sandbox.plain.get(f"{sandbox.admin}/faults", timeout=5).json() == {}


@pytest.mark.parametrize(("code", "status"), [(500, "INTERNAL"), (504, "DEADLINE_EXCEEDED")])
def test_server_error_bursts_answer_googles_json(sandbox, code, status):
    put_faults(sandbox, {"http_errors": {"code": code, "count": 1}})
    answer = sandbox.call("GET", ZONE, "/clusters")
    assert (answer.status_code, answer.json()["error"]["status"]) == (code, status)
    assert sandbox.call("GET", ZONE, "/clusters").status_code == 200


def test_a_502_is_googles_html_page_not_json(sandbox):
    put_faults(sandbox, {"http_errors": {"code": 502, "count": 1}})
    answer = sandbox.call("GET", ZONE, "/clusters")
    assert answer.status_code == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Error 502 (Server Error)" in answer.text
    assert sandbox.requests_log()[-1]["fault"] == "http_errors:502"


def test_an_http_error_with_match_hits_only_matching_calls(sandbox):
    sandbox.create_cluster(ZONE, "dask", nodes=1)
    put_faults(
        sandbox,
        {"http_errors": {"code": 503, "count": 1, "match": r"^DELETE .*/nodePools/default-pool$"}},
    )
    assert sandbox.call("GET", ZONE, "/clusters/dask").status_code == 200
    assert sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/default-pool").status_code == 503
    retried = sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/default-pool")
    assert retried.status_code == 200
    assert sandbox.plain.get(f"{sandbox.admin}/faults", timeout=5).json() == {}


@pytest.mark.parametrize("code", [503, 502])
def test_an_http_error_after_the_call_loses_the_answer_of_a_create_that_happened(sandbox, code):
    put_faults(
        sandbox, {"http_errors": {"code": code, "count": 1, "match": "^POST ", "after": True}}
    )
    assert sandbox.call("GET", ZONE, "/clusters").status_code == 200  # not matched
    body = {"cluster": {"name": "dask", "initialNodeCount": 1}}
    assert sandbox.call("POST", ZONE, "/clusters", json=body).status_code == code
    created = sandbox.call("GET", ZONE, "/clusters/dask")
    assert created.status_code == 200, "the create was not carried out"
    [op] = sandbox.call("GET", ZONE, "/operations").json()["operations"]
    assert op["operationType"] == "CREATE_CLUSTER"
    retried = sandbox.call("POST", ZONE, "/clusters", json=body)
    assert (retried.status_code, retried.json()["error"]["status"]) == (409, "ALREADY_EXISTS")
    assert [e["fault"] for e in sandbox.requests_log()[-5:-3]] == [
        None,
        f"http_errors:{code}:after",
    ]


def test_a_background_upgrade_holds_the_cluster_until_it_ends(sandbox):
    sandbox.create_cluster(ZONE, "dask", nodes=1)
    put_faults(sandbox, {"background_operations": {"type": "UPGRADE_MASTER", "seconds": 30}})
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["status"] == "RECONCILING"
    [upgrade] = [
        op
        for op in sandbox.call("GET", ZONE, "/operations").json()["operations"]
        if op["operationType"] == "UPGRADE_MASTER"
    ]
    assert upgrade["status"] == "RUNNING"
    assert upgrade["targetLink"].endswith("/clusters/dask")
    refused = sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/default-pool")
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "code": 400,
        "message": f"Cluster is running incompatible operation {upgrade['name']}.",
        "status": "FAILED_PRECONDITION",
    }
    # Clearing the faults ends the upgrade early; the cluster takes writes again.
    sandbox.plain.delete(f"{sandbox.admin}/faults", timeout=5)
    sandbox.wait_done(upgrade, ZONE)
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["status"] == "RUNNING"
    assert sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/default-pool").status_code == 200


def test_a_node_auto_upgrade_surges_one_node_per_zone_while_it_runs(sandbox):
    sandbox.create_cluster(ZONE, "dask", nodes=2)
    put_faults(sandbox, {"background_operations": {"type": "AUTO_UPGRADE_NODES", "seconds": 30}})
    cluster_id = f"{PROJECT}.{ZONE}.dask"
    deadline = time.monotonic() + 5
    while sandbox.backend.clusters[cluster_id]["default-pool"]["count"] != 3:
        assert time.monotonic() < deadline, "no surge node"
        time.sleep(0.02)
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["nodePools"][0]["status"] == "RECONCILING"
    assert cluster["nodePools"][0]["initialNodeCount"] == 2  # the configured size stays
    op = next(
        o
        for o in sandbox.call("GET", ZONE, "/operations").json()["operations"]
        if o["operationType"] == "AUTO_UPGRADE_NODES"
    )
    sandbox.plain.delete(f"{sandbox.admin}/faults", timeout=5)
    sandbox.wait_done(op, ZONE)
    assert sandbox.backend.clusters[cluster_id]["default-pool"]["count"] == 2
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["nodePools"][0]["status"] == "RUNNING"


def test_an_upgrade_after_create_refuses_the_bootstrap_pool_delete(sandbox):
    put_faults(
        sandbox,
        {
            "background_operations": {
                "type": "UPGRADE_MASTER",
                "seconds": 30,
                "trigger": "after_create",
            }
        },
    )
    sandbox.create_cluster(ZONE, "dask", nodes=1)
    refused = sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/default-pool")
    assert refused.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "UPGRADE_MASTER" in {
        o["operationType"] for o in sandbox.call("GET", ZONE, "/operations").json()["operations"]
    }


def test_an_unreachable_cluster_api_is_announced_at_a_dead_endpoint(sandbox):
    sandbox.create_cluster(ZONE, "dask", nodes=1)
    put_faults(sandbox, {"cluster_api": {"reachable": False}})
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["endpoint"] == "127.0.0.1:1"
    sandbox.plain.delete(f"{sandbox.admin}/faults", timeout=5)
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["endpoint"] != "127.0.0.1:1"


def test_deleting_a_cluster_with_load_balancers_leaks_their_forwarding_rules(sandbox):
    sandbox.create_cluster(ZONE, "dask", nodes=1)
    sandbox.backend.load_balancers[f"{PROJECT}.{ZONE}.dask"] = [
        {"namespace": "dask", "name": "dask-scheduler", "ip": "127.0.9.1"}
    ]
    sandbox.wait_done(sandbox.call("DELETE", ZONE, "/clusters/dask").json(), ZONE)
    [rule] = sandbox.plain.get(f"{sandbox.admin}/state", timeout=5).json()["leakedForwardingRules"]
    assert rule["IPAddress"] == "127.0.9.1"
    assert json.loads(rule["description"]) == {"kubernetes.io/service-name": "dask/dask-scheduler"}
    assert rule["cluster"] == "dask"
