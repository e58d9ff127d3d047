"""The retry policy and operation bookkeeping of gke_cluster's gke_cluster_api action.

Pure functions are tested directly; the retry loop and the token reuse through the
action with its I/O (HTTP, module runs, sleeps) replaced by recorded fakes.
"""

import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

PLUGIN = Path(__file__).resolve().parents[3] / "plugins/action/gke_cluster_api.py"
spec = importlib.util.spec_from_file_location("gke_cluster_api", PLUGIN)
api = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = api  # dataclasses look their module up there
spec.loader.exec_module(api)


def module_error(code: int, status: str, message: str = "boom") -> str:
    """The message google.cloud's modules fail with on an HTTP error (a dict's repr)."""
    error = {"error": {"code": code, "message": message, "status": status}}
    return f"GCP returned error: {error}"


# ---- judge -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(code):
    assert api.judge(module_error(code, "X")) == api.Verdict("retry", f"HTTP {code}")


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409])
def test_client_errors_fail_at_once(code):
    assert api.judge(module_error(code, "INVALID_ARGUMENT")).kind == "fail"


def test_googles_html_502_page_is_retried():
    text = "Invalid JSON response with error: <title>Error 502 (Server Error)!!1</title>"
    assert api.judge(text) == api.Verdict("retry", "HTTP 502")


def test_a_non_json_answer_is_retried_even_without_its_status():
    # What the _info modules say about Google's HTML 502 page.
    text = "Invalid JSON response with error: Expecting value: line 1 column 1 (char 0)"
    assert api.judge(text).kind == "retry"


def test_a_named_blocking_operation_is_waited_for():
    message = "Cluster is running incompatible operation operation-1796-ab12cd."
    verdict = api.judge(module_error(400, "FAILED_PRECONDITION", message))
    assert verdict == api.Verdict("wait", "FAILED_PRECONDITION", "operation-1796-ab12cd")


def test_an_unnamed_failed_precondition_backs_off():
    assert api.judge(module_error(400, "FAILED_PRECONDITION", "busy")).kind == "retry"


@pytest.mark.parametrize(
    "stderr",
    [
        "AttributeError: 'ConnectionError' object has no attribute 'message'",
        "requests.exceptions.ProxyError: HTTPSConnectionPool(...): Max retries exceeded",
        "http.client.RemoteDisconnected: Remote end closed connection without response",
    ],
)
def test_transport_errors_are_retried(stderr):
    assert api.judge(f"MODULE FAILURE {stderr}").kind == "retry"


def test_a_quota_error_is_not_taken_for_a_rate_limit():
    quota = module_error(403, "PERMISSION_DENIED", "Insufficient regional quota to satisfy request")
    assert api.judge(quota).kind == "fail"


def test_an_explicit_status_wins_over_the_text():
    assert api.judge("whatever", 503).kind == "retry"
    assert api.judge("'code': 503", 400).kind == "fail"


# ---- backoff -----------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_with_jitter():
    backoff = api.Backoff(timeout=1000, delay=2, max_delay=10, started=0.0)
    with mock.patch.object(api.random, "uniform", side_effect=lambda low, high: high):
        delays = [backoff.next_delay(now=0.0) for _ in range(5)]
    assert delays == [2, 4, 8, 10, 10]
    with mock.patch.object(api.random, "uniform", side_effect=lambda low, high: low):
        assert backoff.next_delay(now=0.0) == 5


def test_backoff_stops_at_its_total_bound():
    backoff = api.Backoff(timeout=10, delay=4, max_delay=60, started=0.0)
    with mock.patch.object(api.random, "uniform", side_effect=lambda low, high: high):
        assert backoff.next_delay(now=0.0) == 4
        assert backoff.next_delay(now=4.0) is None  # 4 + 8 > 10
    assert backoff.retries == 1


# ---- operations --------------------------------------------------------------------


def operation(name: str, kind: str, started: str, target: str, **extra) -> dict:
    return {
        "name": name,
        "operationType": kind,
        "startTime": f"2026-01-01T{started}Z",
        "targetLink": f"https://x/v1/projects/p/zones/z/clusters/{target}",
        **extra,
    }


OPERATIONS = [
    operation("op-old", "CREATE_CLUSTER", "09:00:00", "dask", error={"code": 13, "message": "old"}),
    operation("op-create", "CREATE_CLUSTER", "10:00:01", "dask", status="DONE"),
    operation(
        "op-pool",
        "DELETE_NODE_POOL",
        "10:00:09",
        "dask/nodePools/default-pool",
        error={"code": 13, "message": "pool delete failed."},
    ),
    operation("op-upgrade", "UPGRADE_MASTER", "10:00:05", "dask", status="RUNNING"),
    operation("op-other", "CREATE_CLUSTER", "10:00:02", "dask-2", status="DONE"),
]


def test_only_this_calls_operations_on_its_target_count():
    found = api.operations_of_call(
        OPERATIONS, "/clusters/dask", ("CREATE_CLUSTER", "DELETE_NODE_POOL"), "2026-01-01T10:00:00"
    )
    assert [op["name"] for op in found] == ["op-create", "op-pool"]


def test_a_failed_operation_is_described_with_googles_message():
    text = api.describe_operation(OPERATIONS[2])
    assert text == "operation DELETE_NODE_POOL op-pool failed with error 13: pool delete failed"
    assert api.describe_operation(OPERATIONS[3]).endswith("is RUNNING")


# ---- the action's retry loop and tokens --------------------------------------------


def action(policy=None, timeout=30, poll=1):
    """An ActionModule with only what _retrying and _access_token use."""
    module = api.ActionModule.__new__(api.ActionModule)
    module._policy = {**api.DEFAULT_RETRY, **(policy or {})}
    module._timeout, module._poll = timeout, poll
    module._retried = []
    return module


def test_the_roles_retry_variables_reach_the_policy_and_a_task_can_override_them():
    # gke_cluster passes gke_cluster_api_retry_* in its connection block.
    connection = {"delay": "3", "max_delay": 30, "timeout": 90}
    assert api.retry_policy(connection, {}) == {"timeout": 90.0, "delay": 3.0, "max_delay": 30.0}
    assert api.retry_policy(connection, {"timeout": 5})["timeout"] == 5.0
    assert api.retry_policy(None, None) == {k: float(v) for k, v in api.DEFAULT_RETRY.items()}


def test_the_retry_loop_backs_off_then_succeeds():
    answers = iter([({"failed": True}, api.Verdict("retry", "HTTP 503"))] * 2 + [({"ok": 1}, None)])
    module = action({"delay": 1, "max_delay": 8, "timeout": 100})
    with mock.patch.object(api.time, "sleep") as sleep:
        outcome, attempts = module._retrying(lambda: next(answers), "create")
    assert (outcome, attempts) == ({"ok": 1}, 3)
    assert module._retried == ["HTTP 503", "HTTP 503"]
    assert sleep.call_count == 2


def test_the_retry_loop_gives_up_at_its_bound_naming_the_variable():
    module = action({"delay": 50, "max_delay": 60, "timeout": 10})
    unbounded = AssertionError("the loop slept again: no total bound")
    with mock.patch.object(api.time, "sleep", side_effect=[None, unbounded]):
        outcome, attempts = module._retrying(
            lambda: ({"failed": True, "msg": "x"}, api.Verdict("retry", "HTTP 429")), "list"
        )
    assert attempts == 1
    assert "gave up after 1 attempts" in outcome["msg"]
    assert "gke_cluster_api_retry_timeout" in outcome["msg"]


def test_a_blocking_operation_is_waited_for_then_the_call_retried_at_once():
    answers = iter(
        [
            ({"failed": True}, api.Verdict("wait", "FAILED_PRECONDITION", "operation-9")),
            ({"ok": 1}, None),
        ]
    )
    module = action()
    module._wait_for_operation = mock.Mock(return_value=None)
    with mock.patch.object(api.time, "sleep") as sleep:
        outcome, attempts = module._retrying(lambda: next(answers), "pool")
    module._wait_for_operation.assert_called_once_with("operation-9")
    assert (outcome, attempts, sleep.call_count) == ({"ok": 1}, 2, 0)
    assert module._retried == ["waited for operation-9"]


def test_an_operation_still_holding_the_cluster_at_the_bound_fails_the_call():
    module = action()
    module._wait_for_operation = mock.Mock(return_value="held by UPGRADE_MASTER still after 30 s")
    outcome, _ = module._retrying(
        lambda: ({"failed": True}, api.Verdict("wait", "FAILED_PRECONDITION", "operation-9")),
        "pool",
    )
    assert outcome["msg"] == "pool: held by UPGRADE_MASTER still after 30 s"


def token_action(auth_kind, lifetime, fresh=("ya29.new", 3599)):
    module = action()
    module._google = SimpleNamespace(
        auth_kind=auth_kind, access_token="ya29.given", fresh_token=mock.Mock(return_value=fresh)
    )
    module._token_lifetime = mock.Mock(return_value=lifetime)
    return module


def test_a_token_with_time_left_is_kept():
    module = token_action("serviceaccount", 1800)
    result = module._access_token({"current": "ya29.old", "min_valid": 600})
    assert (result["token"], result["refreshed"]) == ("ya29.old", False)
    module._google.fresh_token.assert_not_called()
    assert result["_ansible_no_log"] is True


@pytest.mark.parametrize("lifetime", [None, 599])
def test_an_expired_or_short_token_is_replaced(lifetime):
    module = token_action("serviceaccount", lifetime)
    result = module._access_token({"current": "ya29.old", "min_valid": 600})
    assert (result["token"], result["refreshed"]) == ("ya29.new", True)


def test_no_current_token_makes_one_without_asking_tokeninfo():
    module = token_action("application", None)
    assert module._access_token({"current": "", "min_valid": 600})["token"] == "ya29.new"
    module._token_lifetime.assert_not_called()


def test_an_expired_given_token_fails_with_the_fix():
    module = token_action("accesstoken", None)
    result = module._access_token({"current": "", "min_valid": 600})
    assert result["failed"] is True
    assert "gke_cluster_access_token is no longer valid" in result["msg"]
    assert "gcloud auth print-access-token" in result["msg"]
    module._token_lifetime.assert_called_once_with("ya29.given")


def test_a_disabled_api_gets_the_command_that_enables_it():
    message = module_error(
        403,
        "PERMISSION_DENIED",
        "Kubernetes Engine API has not been used in project 123 before or it is disabled. Enable it"
        " by visiting https://console.developers.google.com/apis/api/container.googleapis.com/overview",
    )
    hint = api.disabled_service_hint(message, "my-project")
    assert "gcloud services enable container.googleapis.com --project my-project" in hint
    assert api.disabled_service_hint(module_error(404, "NOT_FOUND"), "my-project") == ""


# ---- raw calls: several reads in one task, a cluster create waited for -------------

PARENT = f"{api.GKE_API}/projects/p/locations/z"
CREATE = {
    "method": "POST",
    "url": f"{PARENT}/clusters",
    "body": {"cluster": {"name": "dask", "nodePools": [{"name": "pool", "initialNodeCount": 5}]}},
}


def answer(status: int, body=None):
    """A requests.Response as the plugin reads it."""

    def json():
        if body is None:
            raise ValueError("no JSON")
        return body

    return SimpleNamespace(status_code=status, json=json, text=str(body))


def create_op(status: str, **extra) -> dict:
    return {
        "name": "operation-create",
        "operationType": "CREATE_CLUSTER",
        "status": status,
        "startTime": "2999-01-01T00:00:00Z",  # after any `since`
        "targetLink": f"{PARENT}/clusters/dask",
        **extra,
    }


class FakeGoogle:
    """GoogleConnection's session: answers (or exceptions) per "METHOD url", in order."""

    project, location, auth_kind = "p", "z", "application"

    def __init__(self, script: dict):
        self.script = {key: list(answers) for key, answers in script.items()}
        self.calls: list[str] = []

    def session(self):
        return self

    def request(self, method, url, json=None, timeout=None):
        key = f"{method} {url}"
        self.calls.append(key)
        found = self.script[key].pop(0) if len(self.script[key]) > 1 else self.script[key][0]
        if isinstance(found, Exception):
            raise found
        return found

    def get(self, url, timeout=None):
        return self.request("GET", url, timeout=timeout)


def raw_action(script: dict, check_mode=False, timeout=30):
    module = action({"delay": 1, "max_delay": 1, "timeout": 60}, timeout=timeout)
    module._google = FakeGoogle(script)
    module._task = SimpleNamespace(check_mode=check_mode, get_name=lambda: "cluster | Create")
    return module


OPERATION_URL = f"{PARENT}/operations/operation-create"


@pytest.fixture
def no_sleep():
    with mock.patch.object(api.time, "sleep") as sleep:
        yield sleep


def test_a_cluster_create_is_one_post_waited_for_until_its_operation_is_done(no_sleep):
    module = raw_action(
        {
            f"POST {PARENT}/clusters": [answer(200, create_op("RUNNING"))],
            f"GET {OPERATION_URL}": [
                answer(200, create_op("RUNNING")),
                answer(200, create_op("DONE")),
            ],
        }
    )
    with mock.patch.object(api.display, "display") as shown:
        result = module._run_requests({"cluster": CREATE}, set())
    shown.assert_not_called()  # stdout may be a JSON callback's: the own wait is quiet
    assert module._google.calls == [
        f"POST {PARENT}/clusters",
        f"GET {OPERATION_URL}",
        f"GET {OPERATION_URL}",
    ]
    assert result["changed"] is True and not result.get("failed")
    assert result["operations"] == ["operation-create"]
    assert result["responses"]["cluster"]["json"]["status"] == "DONE"


def test_a_create_whose_operation_failed_fails_with_gkes_message(no_sleep):
    failed = create_op("DONE", error={"code": 13, "message": "Sandbox: the operation failed."})
    module = raw_action(
        {
            f"POST {PARENT}/clusters": [answer(200, create_op("RUNNING"))],
            f"GET {OPERATION_URL}": [answer(200, failed)],
        }
    )
    result = module._run_requests({"cluster": CREATE}, set())
    assert result["failed"] is True and result["changed"] is True
    assert (
        "CREATE_CLUSTER operation-create failed with error 13: Sandbox: the operation failed"
        in (result["msg"])
    )
    assert (
        "gcloud container operations describe operation-create --project p --location z"
        in (result["msg"])
    )


def test_a_create_still_running_at_the_bound_fails_naming_the_variable(no_sleep):
    module = raw_action(
        {
            f"POST {PARENT}/clusters": [answer(200, create_op("RUNNING"))],
            f"GET {OPERATION_URL}": [answer(200, create_op("RUNNING"))],
        },
        timeout=0,
    )
    result = module._run_requests({"cluster": CREATE}, set())
    assert result["failed"] is True
    assert "CREATE_CLUSTER operation-create is RUNNING still after 0 s" in result["msg"]
    assert "gke_cluster_operation_timeout" in result["msg"]


def test_a_retry_meeting_already_exists_waits_for_the_create_its_lost_answer_started(no_sleep):
    # The first POST created the cluster but its answer was lost; the retry is told 409.
    module = raw_action(
        {
            f"POST {PARENT}/clusters": [
                api.requests.ConnectionError("Connection aborted."),
                answer(409, {"error": {"code": 409, "status": "ALREADY_EXISTS"}}),
            ],
            f"GET {PARENT}/operations": [answer(200, {"operations": [create_op("RUNNING")]})],
            f"GET {OPERATION_URL}": [answer(200, create_op("DONE"))],
        }
    )
    result = module._run_requests({"cluster": CREATE}, set())
    assert not result.get("failed"), result
    assert result["changed"] is True and result["operations"] == ["operation-create"]
    assert module._google.calls.count(f"POST {PARENT}/clusters") == 2
    assert module._retried == [
        "no answer (transport error)",
        "operation-create of an earlier attempt",
    ]


def test_already_exists_without_an_operation_of_this_call_fails(no_sleep):
    someone_elses = dict(create_op("DONE"), startTime="2000-01-01T00:00:00Z")
    module = raw_action(
        {
            f"POST {PARENT}/clusters": [answer(409, {"error": {"status": "ALREADY_EXISTS"}})],
            f"GET {PARENT}/operations": [answer(200, {"operations": [someone_elses]})],
        }
    )
    result = module._run_requests({"cluster": CREATE}, set())
    assert result["failed"] is True and result["changed"] is False
    assert "HTTP 409" in result["msg"] and "ALREADY_EXISTS" in result["msg"]


def test_a_create_answered_503_is_retried_with_the_policy(no_sleep):
    module = raw_action(
        {
            f"POST {PARENT}/clusters": [answer(503, {"error": {}}), answer(200, create_op("DONE"))],
        }
    )
    result = module._run_requests({"cluster": CREATE}, set())
    assert not result.get("failed") and result["changed"] is True
    assert module._retried == ["HTTP 503"]
    assert module._google.calls == [f"POST {PARENT}/clusters"] * 2


def test_a_create_in_check_mode_sends_nothing():
    module = raw_action({}, check_mode=True)
    result = module._run_requests({"cluster": CREATE}, set())
    assert module._google.calls == []
    assert result["changed"] is True
    assert result["responses"]["cluster"] == {"status": None, "json": None}


def test_several_reads_in_one_task_each_with_its_own_allowed_statuses(no_sleep):
    region = "https://compute/regions/r"
    module = raw_action(
        {
            "GET https://compute/project": [answer(403, {"error": {"message": "denied"}})],
            f"GET {region}": [answer(404, {"error": {}})],
        }
    )
    calls = {"project": {"url": "https://compute/project", "allow": [403]}, "region": region}
    result = module._run_requests(calls, {404})
    assert result == {
        "changed": False,
        "responses": {
            "project": {"status": 403, "json": {"error": {"message": "denied"}}},
            "region": {"status": 404, "json": {"error": {}}},
        },
    }
    # The per-call allowance is that call's only.
    module = raw_action({f"GET {region}": [answer(403, {"error": {}})]})
    assert module._run_requests(calls | {"project": region}, {404})["failed"] is True


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", f"{PARENT}/clusters", ("/clusters/dask", ("CREATE_CLUSTER",))),
        ("GET", f"{PARENT}/clusters", None),
        (
            "POST",
            "https://iam.googleapis.com/v1/projects/-/serviceAccounts/x:testIamPermissions",
            None,
        ),
    ],
)
def test_only_gke_writes_are_waited_for(method, url, expected):
    assert api.raw_write({**CREATE, "url": url}, method) == expected


def test_modules_run_without_the_controllers_gcp_variables(monkeypatch):
    # google.cloud's modules fall back to GCP_ACCESS_TOKEN & co.: an exported token
    # made every call of a service-account connection fail.
    monkeypatch.setenv("GCP_ACCESS_TOKEN", "ya29.exported")
    monkeypatch.setenv("GCP_SCOPES", "https://www.googleapis.com/auth/devstorage.read_only")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    module = action()
    module._task = SimpleNamespace(environment=None)
    module._google = SimpleNamespace(module_environment={"REQUESTS_CA_BUNDLE": "/ca.pem"})
    seen = module._with_environment(lambda: (dict(os.environ), module._task.environment))
    environ, task_environment = seen
    assert not [name for name in environ if name.startswith("GCP_")]
    assert environ["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    assert task_environment == [{"REQUESTS_CA_BUNDLE": "/ca.pem"}]
    assert os.environ["GCP_ACCESS_TOKEN"] == "ya29.exported"
    assert module._task.environment is None
