# Copyright: dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every Google API call of gke_cluster: one connection, one retry policy, bounded waits.

Its documentation is plugins/modules/gke_cluster_api.py (library/ in the repository).
"""

from __future__ import annotations

import functools
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.dask_gke.core.plugins.plugin_utils.in_process import environment_applied

try:
    import google.auth
    import google.auth.compute_engine
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.credentials
    import google.oauth2.service_account
    import requests

    HAS_GOOGLE_AUTH = True
except ImportError:
    HAS_GOOGLE_AUTH = False

display = Display()

GKE_API = "https://container.googleapis.com/v1"
TOKENINFO = "https://oauth2.googleapis.com/tokeninfo"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
HTTP_OK = 200
HTTP_NOT_FOUND = 404
HTTP_REDIRECTS = 300  # first status that is not a success
DEFAULT_RETRY = {"timeout": 600, "delay": 2, "max_delay": 60}
REQUEST_TIMEOUT = 30  # seconds of one HTTP call of the plugin itself
CLOCK_SKEW = timedelta(seconds=5)  # between the control node and GKE's operation times
# The operations a write starts, to tell them from GKE's own ones: a module's by its
# name and state, a raw GKE call of `requests` by its method and the collection its
# URL ends with. A raw write is skipped in check mode and waited for.
WRITE_OPERATIONS = {
    ("google.cloud.gcp_container_cluster", "present"): ("CREATE_CLUSTER", "DELETE_NODE_POOL"),
    ("google.cloud.gcp_container_cluster", "absent"): ("DELETE_CLUSTER",),
    ("google.cloud.gcp_container_node_pool", "present"): ("CREATE_NODE_POOL",),
    ("google.cloud.gcp_container_node_pool", "absent"): ("DELETE_NODE_POOL",),
    ("POST", "clusters"): ("CREATE_CLUSTER",),
}
# The field of a raw write's body that holds the new resource (its `name` is the target).
RAW_WRITE_RESOURCE = {"clusters": "cluster"}
HTTP_CONFLICT = 409  # ALREADY_EXISTS
BLOCKING_OPERATION = re.compile(r"incompatible operation (operation-[\w-]+)")
STATUS_IN_MESSAGE = (
    re.compile(r"['\"]code['\"]: (\d{3})"),  # the modules' "GCP returned error: {...}"
    re.compile(r"Error (\d{3}) \("),  # Google front end's HTML error page
)
# A request that never got an answer. The modules turn these into an AttributeError
# (they read the exception's missing `message`), which is how they are recognised.
TRANSPORT_ERRORS = re.compile(
    r"ConnectionError|ProxyError|ConnectTimeout|ReadTimeout|RemoteDisconnected|"
    r"Connection aborted|Max retries exceeded|object has no attribute 'message'"
)


# ---- the retry policy (pure, unit-tested) ----------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What to do about a failed call: retry after a backoff, wait for an operation, or stop."""

    kind: str  # "retry", "wait" or "fail"
    reason: str = ""
    operation: str = ""


def judge(message: str, status: int | None = None) -> Verdict:
    """Classify a failure from its HTTP status (when known) and its text."""
    blocking = BLOCKING_OPERATION.search(message)
    if blocking:
        return Verdict("wait", "FAILED_PRECONDITION", blocking.group(1))
    if status is None:
        for pattern in STATUS_IN_MESSAGE:
            found = pattern.search(message)
            if found:
                status = int(found.group(1))
                break
    if status in RETRY_STATUSES:
        return Verdict("retry", f"HTTP {status}")
    if "FAILED_PRECONDITION" in message:  # another change in flight, not named
        return Verdict("retry", "FAILED_PRECONDITION")
    if status is None and TRANSPORT_ERRORS.search(message):
        return Verdict("retry", "no answer (transport error)")
    # An API that answers JSON answered something else: Google's front end (or a
    # proxy) with an HTML error page. The _info modules keep only the parse error.
    if status is None and "Invalid JSON response" in message:
        return Verdict("retry", "a non-JSON answer (a front end's error page)")
    return Verdict("fail", f"HTTP {status}" if status else "error")


def retry_policy(connection_retry: dict | None, task_retry: dict | None) -> dict:
    """The policy of one task: the defaults, then the connection's (the role's
    gke_cluster_api_retry_* variables), then the task's own `retry`."""
    merged = {**DEFAULT_RETRY, **(connection_retry or {}), **(task_retry or {})}
    return {key: float(merged[key]) for key in DEFAULT_RETRY}


@dataclass
class Backoff:
    """Truncated exponential backoff with jitter, bounded in total."""

    timeout: float
    delay: float
    max_delay: float
    started: float = field(default_factory=time.monotonic)
    retries: int = 0

    def next_delay(self, now: float | None = None) -> float | None:
        """Seconds to sleep before the next try, or None when the total bound is reached."""
        now = time.monotonic() if now is None else now
        ceiling = min(self.max_delay, self.delay * 2**self.retries)
        pause = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto
        if now + pause - self.started > self.timeout:
            return None
        self.retries += 1
        return pause


def operations_of_call(operations: list[dict], target: str, types, since: str) -> list[dict]:
    """The operations on `target` (a cluster or pool path) of `types` started since `since`."""
    wanted = re.compile(re.escape(target) + r"($|/)")
    return sorted(
        (
            op
            for op in operations
            if op.get("operationType") in types
            and wanted.search(op.get("targetLink", ""))
            and op.get("startTime", "") >= since
        ),
        key=lambda op: op.get("startTime", ""),
    )


def disabled_service_hint(message: str, project: str) -> str:
    """The fix for a SERVICE_DISABLED answer, or "" for any other failure."""
    if "SERVICE_DISABLED" not in message and "has not been used in project" not in message:
        return ""
    found = re.search(r"apis/api/([a-z0-9.-]+\.googleapis\.com)", message) or re.search(
        r"['\"]service['\"]: ['\"]([a-z0-9.-]+\.googleapis\.com)", message
    )
    service = found.group(1) if found else "SERVICE.googleapis.com"
    return (
        f" The {service} API is not enabled in project {project}; nothing was created. "
        f"Enable it with: gcloud services enable {service} --project {project}"
    )


def describe_operation(op: dict) -> str:
    error = op.get("error") or {}
    return (
        f"operation {op.get('operationType', '?')} {op.get('name', '?')} "
        f"{'failed with error ' + str(error.get('code', '?')) + ': ' if error else 'is '}"
        f"{(error.get('message') or op.get('status', '?')).rstrip('. ')}"
    )


def raw_write(call: dict, method: str) -> tuple[str, tuple] | None:
    """(target, operation types) of a raw call that writes to GKE, or None for a read.

    The target is the path operations_of_call matches, e.g. "/clusters/dask"."""
    url = call["url"]
    if not url.startswith(GKE_API + "/"):
        return None
    collection = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    types = WRITE_OPERATIONS.get((method, collection))
    if types is None:
        return None
    resource = ((call.get("body") or {}).get(RAW_WRITE_RESOURCE[collection]) or {}).get("name")
    if not resource:
        raise AnsibleActionFail(
            f"{method} {url}: the body names no {RAW_WRITE_RESOURCE[collection]}.name"
        )
    parent = url.split("/locations/", 1)[-1].split("?", 1)[0].rstrip("/")
    return "/" + parent.split("/", 1)[1] + "/" + resource, types


# ---- Google credentials and HTTP -----------------------------------------------------


class GoogleConnection:
    """The play's Google identity and network path, for the plugin's own HTTP calls."""

    def __init__(self, spec: dict):
        self.project = spec["project"]
        self.location = spec["location"]
        self.auth_kind = spec["auth_kind"]
        self.service_account_file = spec.get("service_account_file") or ""
        self.access_token = spec.get("access_token") or ""
        # Added to the modules' environment; the plugin's own calls see the same values.
        self.module_environment = dict(spec.get("environment") or {})
        self.environment = {**os.environ, **self.module_environment}
        self._session = None
        self._credentials = None

    def module_args(self, module: str) -> dict:
        args = {"project": self.project, "auth_kind": self.auth_kind}
        if self.auth_kind == "serviceaccount":
            args["service_account_file"] = self.service_account_file
        if self.auth_kind == "accesstoken":
            args["access_token"] = self.access_token
        if module.startswith("google.cloud.gcp_container_"):
            args["location"] = self.location
        return args

    def plain_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # the environment above decides, not the controller's
        proxy = self.environment.get("HTTPS_PROXY") or self.environment.get("https_proxy")
        if proxy:
            session.proxies = {"https": proxy}
        session.verify = (
            self.environment.get("REQUESTS_CA_BUNDLE")
            or self.environment.get("CURL_CA_BUNDLE")
            or True
        )
        return session

    def credentials(self):
        if self._credentials is None:
            self._credentials = self._make_credentials()
        return self._credentials

    def _make_credentials(self):
        if self.auth_kind == "accesstoken":
            return google.oauth2.credentials.Credentials(self.access_token)
        if self.auth_kind == "serviceaccount":
            return google.oauth2.service_account.Credentials.from_service_account_file(
                os.path.expanduser(self.service_account_file), scopes=SCOPES
            )
        if self.auth_kind == "machineaccount":
            return google.auth.compute_engine.Credentials()
        adc_file = self.environment.get("GOOGLE_APPLICATION_CREDENTIALS")
        if adc_file:
            credentials, _project = google.auth.load_credentials_from_file(adc_file, scopes=SCOPES)
        else:
            credentials, _project = google.auth.default(scopes=SCOPES)
        return credentials

    def session(self):
        if self._session is None:
            auth_request = google.auth.transport.requests.Request(self.plain_session())
            session = google.auth.transport.requests.AuthorizedSession(
                self.credentials(), auth_request=auth_request
            )
            plain = self.plain_session()
            session.trust_env, session.proxies, session.verify = (
                plain.trust_env,
                plain.proxies,
                plain.verify,
            )
            self._session = session
        return self._session

    def fresh_token(self) -> tuple[str, int]:
        """A new access token from the credentials, and its lifetime in seconds."""
        credentials = self.credentials()
        if self.auth_kind == "accesstoken":
            return self.access_token, 0
        credentials.refresh(google.auth.transport.requests.Request(self.plain_session()))
        left = (credentials.expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
        return credentials.token, int(left)


# ---- the action ---------------------------------------------------------------------


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False  # the plugin runs its modules asynchronously itself

    ARGUMENT_SPEC: ClassVar[dict] = {
        "connection": {"type": "dict", "required": True},
        "retry": {"type": "dict", "default": {}},
        "module": {"type": "str"},
        "args": {"type": "dict", "default": {}},
        "timeout": {"type": "int", "default": 1800},
        "poll": {"type": "int", "default": 5},
        "requests": {"type": "dict"},
        "allow": {"type": "list", "elements": "int", "default": []},
        "access_token": {"type": "dict", "no_log": False},
    }

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(
            argument_spec=self.ARGUMENT_SPEC,
            required_one_of=[["module", "requests", "access_token"]],
            mutually_exclusive=[["module", "requests", "access_token"]],
        )
        if not HAS_GOOGLE_AUTH:
            raise AnsibleActionFail("gke_cluster needs the google-auth and requests packages")
        self._vars = task_vars
        self._google = GoogleConnection(args["connection"])
        self._policy = retry_policy(args["connection"].get("retry"), args["retry"])
        self._timeout, self._poll = args["timeout"], max(1, args["poll"])
        self._retried: list[str] = []
        try:
            if args["module"]:
                result.update(self._run_module(args["module"], args["args"]))
            elif args["requests"] is not None:
                result.update(self._run_requests(args["requests"], set(args["allow"])))
            else:
                result.update(self._access_token(args["access_token"]))
        except google.auth.exceptions.GoogleAuthError as error:
            result.update(
                failed=True, msg=f"Google credentials ({self._google.auth_kind}): {error}"
            )
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result["retried"] = self._retried
        return result

    # ---- retries ------------------------------------------------------------------

    def _retrying(self, attempt, what: str) -> tuple[dict, int]:
        """Call attempt() -> (result, verdict or None) until done; return (result, attempts)."""
        backoff = Backoff(self._policy["timeout"], self._policy["delay"], self._policy["max_delay"])
        attempts = 0
        while True:
            attempts += 1
            outcome, verdict = attempt()
            if verdict is None or verdict.kind == "fail":
                return outcome, attempts
            if verdict.kind == "wait":
                waited = self._wait_for_operation(verdict.operation)
                if waited is not None:  # still running at the bound
                    outcome = dict(outcome, msg=f"{what}: {waited}")
                    return outcome, attempts
                self._retried.append(f"waited for {verdict.operation}")
                continue
            pause = backoff.next_delay()
            if pause is None:
                outcome = dict(
                    outcome,
                    msg=f"{what}: gave up after {attempts} attempts in "
                    f"{self._policy['timeout']} s (gke_cluster_api_retry_timeout), last answer "
                    f"{verdict.reason}: {outcome.get('msg', '')}",
                )
                return outcome, attempts
            self._retried.append(verdict.reason)
            # stderr: stdout may be a JSON callback's.
            display.display(
                f"{what}: {verdict.reason}, retry {backoff.retries} in {pause:.1f} s",
                color="yellow",
                stderr=True,
            )
            time.sleep(pause)

    def _wait_for_operation(self, name: str) -> str | None:
        """Wait until operation `name` (another one, holding the cluster) is DONE; None when
        it is, else why not."""
        _op, problem = self._await_operation(name, holder=True)
        return problem

    def _await_operation(self, name: str, *, holder: bool) -> tuple[dict, str | None]:
        """Poll operation `name` until DONE (or gone), bounded by the task's timeout; `holder`:
        another operation that holds the cluster, else this task's own.

        Returns its last state and None, or why the wait ended without it being DONE."""
        url = (
            f"{GKE_API}/projects/{self._google.project}/locations/"
            f"{self._google.location}/operations/{name}"
        )
        deadline = time.monotonic() + self._timeout
        announced = False
        while True:
            answer = self._get_json(url)
            op = answer.get("json") or {}
            if op.get("status") == "DONE" or answer.get("status") == HTTP_NOT_FOUND:
                return op, None
            if not announced:
                text = (
                    f"Waiting for GKE operation {name} ({op.get('operationType', '?')}) "
                    f"{'that holds the cluster' if holder else 'of this task'}, "
                    f"up to {self._timeout} s"
                )
                # Another operation holding the cluster is news (on stderr: stdout may be
                # a JSON callback's); the task's own is what the task says it waits for.
                if holder:
                    display.display(text, color="yellow", stderr=True)
                else:
                    display.vv(text)
                announced = True
            if time.monotonic() >= deadline:
                return op, (
                    f"{'the cluster is held by ' if holder else ''}"
                    f"{describe_operation(op or {'name': name})} still after "
                    f"{self._timeout} s (gke_cluster_operation_timeout)"
                )
            time.sleep(self._poll)

    def _get_json(self, url: str) -> dict:
        """One GET with the policy's retries; {status, json} or {status: None, error}."""
        found = {}

        def attempt():
            try:
                response = self._google.session().get(url, timeout=REQUEST_TIMEOUT)
            except requests.RequestException as error:
                found.update(status=None, json=None, msg=str(error))
                return found, judge(str(error))
            found.update(
                status=response.status_code, json=_json_of(response), msg=response.text[:500]
            )
            if response.status_code < HTTP_REDIRECTS or response.status_code == HTTP_NOT_FOUND:
                return found, None
            return found, judge(response.text, response.status_code)

        outcome, _attempts = self._retrying(attempt, f"GET {url}")
        return outcome

    # ---- modules ------------------------------------------------------------------

    def _run_module(self, module: str, module_args: dict) -> dict:
        state = module_args.get("state", "present")
        writes = WRITE_OPERATIONS.get((module, state))
        if writes and self._task.check_mode:
            return {"changed": True, "msg": f"check mode: {module} state={state} not run"}
        full_args = {**module_args, **self._google.module_args(module)}
        since = (datetime.now(UTC) - CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S")

        def attempt():
            outcome = (
                self._execute_async(module, full_args)
                if writes
                else self._execute(module, full_args)
            )
            if not outcome.get("failed"):
                return outcome, None
            text = " ".join(
                str(outcome.get(key, "")) for key in ("msg", "module_stderr", "module_stdout")
            )
            return outcome, judge(text)

        outcome, attempts = self._retrying(attempt, self._task.get_name())
        outcome = {k: v for k, v in outcome.items() if k != "invocation"}
        outcome["attempts"] = attempts
        if outcome.get("failed"):
            outcome["msg"] = str(outcome.get("msg", "")) + disabled_service_hint(
                str(outcome.get("msg", "")), self._google.project
            )
        if writes:
            self._check_operations(outcome, module, full_args, writes, since)
        return outcome

    def _execute(self, module: str, module_args: dict) -> dict:
        return self._with_environment(
            lambda: self._execute_module(
                module_name=module, module_args=module_args, task_vars=self._vars
            )
        )

    def _execute_async(self, module: str, module_args: dict) -> dict:
        """Run the module with a time limit (async_wrapper stops it) and poll it."""
        saved = self._task.async_val
        self._task.async_val = self._timeout
        try:
            started = self._with_environment(
                lambda: self._execute_module(
                    module_name=module,
                    module_args=module_args,
                    task_vars=self._vars,
                    wrap_async=True,
                )
            )
        finally:
            self._task.async_val = saved
        job = started.get("ansible_job_id")
        if not job:
            return started
        async_dir = self._remote_expand_user(
            self.get_shell_option("async_dir", default="~/.ansible_async")
        )
        deadline = time.monotonic() + self._timeout + 2 * self._poll
        while True:
            time.sleep(self._poll)
            status = self._execute_module(
                module_name="ansible.legacy.async_status",
                module_args={"jid": job, "_async_dir": async_dir},
                task_vars=self._vars,
            )
            if status.get("finished"):
                break
            if time.monotonic() > deadline:
                status.update(failed=True, msg=f"Timeout exceeded ({self._timeout} s)")
                break
        self._execute_module(
            module_name="ansible.legacy.async_status",
            module_args={"jid": job, "mode": "cleanup", "_async_dir": async_dir},
            task_vars=self._vars,
        )
        for key in (
            "ansible_job_id",
            "started",
            "finished",
            "results_file",
            "stdout_lines",
            "stderr_lines",
        ):
            status.pop(key, None)
        return status

    def _with_environment(self, run):
        """Run with the connection's environment added to the task's (proxy, CA bundle),
        and without the controller's GCP_* variables: the google.cloud modules take them
        as fallbacks (an exported GCP_ACCESS_TOKEN fails every other auth_kind, GCP_SCOPES
        changes the scopes), while the connection alone decides. This worker process
        runs this one task, and its environment is restored afterwards."""
        saved = self._task.environment
        extra = self._google.module_environment
        self._task.environment = [*(saved or []), extra] if extra else saved
        try:
            with environment_applied(unset_prefixes=("GCP_",)):
                return run()
        finally:
            self._task.environment = saved

    def _check_operations(self, outcome: dict, module: str, args: dict, types, since: str) -> None:
        """Fail with GKE's message when an operation of this call failed or is still running."""
        if module.endswith("_node_pool"):
            target = f"/clusters/{args['cluster']['name']}/nodePools/{args['name']}"
        else:
            target = f"/clusters/{args['name']}"
        listed = self._get_json(
            f"{GKE_API}/projects/{args['project']}/locations/{args['location']}/operations"
        )
        operations = operations_of_call(
            (listed.get("json") or {}).get("operations", []), target, types, since
        )
        if operations:
            outcome["changed"] = True  # an earlier attempt may have made the change
        failed = [op for op in operations if op.get("error")]
        running = [op for op in operations if op.get("status") != "DONE"]
        causes = failed or (running if outcome.get("failed") else [])
        if causes:
            outcome["failed"] = True
            said = str(outcome.get("msg", "")).rstrip(". ")
            outcome["msg"] = self._operation_failure(
                causes[0], f"Module said: {said}. " if said else ""
            )
        elif outcome.get("failed") and listed.get("status") != HTTP_OK:
            unread = listed.get("msg", "")
            outcome["msg"] = (
                f"{outcome.get('msg', '')} (the operations list could not be read: {unread})"
            )
        outcome["operations"] = [op.get("name") for op in operations]

    def _operation_failure(self, op: dict, said: str = "", description: str = "") -> str:
        """The failure message of an operation of this call that failed or is still running."""
        return (
            f"GKE: {self._task.get_name()}: {description or describe_operation(op)}. {said}"
            f"Inspect with: gcloud container operations describe {op.get('name')} "
            f"--project {self._google.project} --location {self._google.location}"
        )

    # ---- raw calls ----------------------------------------------------------------

    def _request_once(self, call: dict, method: str, allowed: set[int]):
        """One raw call: (what it found, why to retry or None)."""
        found = {}
        try:
            response = self._google.session().request(
                method, call["url"], json=call.get("body"), timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException as error:
            found.update(status=None, json=None, msg=str(error))
            return found, judge(str(error))
        found.update(status=response.status_code, json=_json_of(response))
        if response.status_code < HTTP_REDIRECTS or response.status_code in allowed:
            return found, None
        found["msg"] = (
            f"{method} {call['url']}: HTTP {response.status_code}: {response.text[:1000]}"
        )
        return found, judge(response.text, response.status_code)

    def _run_requests(self, calls: dict, allowed: set[int]) -> dict:
        responses = {}
        result = {"changed": False, "responses": responses}
        for name, spec in calls.items():
            call = spec if isinstance(spec, dict) else {"url": spec}
            method = call.get("method", "GET").upper()
            allow = allowed | set(call.get("allow") or [])
            write = raw_write(call, method)
            if write is not None:
                outcome = self._raw_write(call, method, *write)
                result["changed"] = result["changed"] or outcome.pop("changed")
                result.setdefault("operations", []).extend(outcome.pop("operations"))
                if outcome.get("failed"):
                    return {**result, "failed": True, "msg": outcome["msg"]}
                responses[name] = outcome
                continue
            attempt = functools.partial(self._request_once, call, method, allow)
            outcome, _attempts = self._retrying(attempt, f"{method} {call['url']}")
            if outcome.get("status") is None or (
                outcome["status"] >= HTTP_REDIRECTS and outcome["status"] not in allow
            ):
                message = outcome.get("msg", "")
                message += disabled_service_hint(message, self._google.project)
                return {**result, "failed": True, "msg": message}
            responses[name] = {"status": outcome["status"], "json": outcome["json"]}
        return result

    def _raw_write(self, call: dict, method: str, target: str, types: tuple) -> dict:
        """A GKE write and the operation it starts, waited for: {status, json (the
        operation), changed, operations} or {failed, msg, changed, operations}.

        Retried as every call. An answer lost on the way (a transport error, a 5xx after
        GKE acted) makes the retry meet 409 ALREADY_EXISTS: then the operation this call
        started on the target is the one waited for; with none, the 409 is the answer."""
        if self._task.check_mode:
            return {"status": None, "json": None, "changed": True, "operations": []}
        since = (datetime.now(UTC) - CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S")
        what = f"{method} {call['url']}"
        attempt = functools.partial(self._request_once, call, method, set())
        outcome, _attempts = self._retrying(attempt, what)
        status, op = outcome.get("status"), outcome.get("json") or {}
        if status == HTTP_CONFLICT:
            listed = self._get_json(
                f"{GKE_API}/projects/{self._google.project}/locations/"
                f"{self._google.location}/operations"
            )
            ours = operations_of_call(
                (listed.get("json") or {}).get("operations", []), target, types, since
            )
            if not ours:
                return {**outcome, "failed": True, "changed": False, "operations": []}
            op = ours[-1]
            self._retried.append(f"{op.get('name')} of an earlier attempt")
        elif status is None or status >= HTTP_REDIRECTS or not op.get("name"):
            message = outcome.get("msg") or f"{what}: HTTP {status}: no operation in the answer"
            message += disabled_service_hint(message, self._google.project)
            return {"failed": True, "msg": message, "changed": False, "operations": []}
        done = {"changed": True, "operations": [op["name"]], "status": status}
        if op.get("status") != "DONE":
            final, problem = self._await_operation(op["name"], holder=False)
            op = final or op
            if problem is not None:
                return {**done, "failed": True, "msg": self._operation_failure(op, "", problem)}
        if op.get("error"):
            return {**done, "failed": True, "msg": self._operation_failure(op)}
        return {**done, "json": op}

    # ---- tokens -------------------------------------------------------------------

    def _access_token(self, spec: dict) -> dict:
        current = spec.get("current") or ""
        min_valid = int(spec.get("min_valid", 600))
        connection = self._google
        if connection.auth_kind == "accesstoken":
            current = connection.access_token
        left = self._token_lifetime(current) if current else None
        result = {"changed": False, "_ansible_no_log": True}
        if left is not None and left >= min_valid:
            return {**result, "token": current, "refreshed": False, "expires_in": left}
        if connection.auth_kind == "accesstoken":
            return {
                "failed": True,
                "msg": "gke_cluster_access_token is no longer valid"
                + (f" ({left} s left)" if left is not None else " (expired or revoked)")
                + ": get a fresh one (gcloud auth print-access-token), or let the play make "
                "its own with gke_cluster_auth_kind=serviceaccount or application.",
            }
        token, lifetime = connection.fresh_token()
        return {**result, "token": token, "refreshed": True, "expires_in": lifetime}

    def _token_lifetime(self, token: str) -> int | None:
        """Seconds Google says the token has left; None when invalid or unknowable."""
        session = self._google.plain_session()
        try:
            response = session.post(
                TOKENINFO, data={"access_token": token}, timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException:
            return None
        if response.status_code != HTTP_OK:
            return None
        try:
            return int((_json_of(response) or {}).get("expires_in", 0))
        except (TypeError, ValueError):
            return None


def _json_of(response):
    try:
        return response.json()
    except ValueError:
        return None
