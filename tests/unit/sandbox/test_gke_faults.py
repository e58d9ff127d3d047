"""Fault injection through the admin API: HTTP error bursts, operation faults, LB faults."""

import time

import pytest

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
        {"http_errors": {"code": 500, "count": 1}},
        {"http_errors": {"code": 503, "count": 0}},
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
