"""Helpers shared by the molecule verifiers: the sandbox, its admin API, playbook runs,
kubectl/helm and the diagnostics a failing scenario prints.

Everything here observes state (the emulator's request log and state, Kubernetes objects,
Helm releases, files, processes); nothing trusts an Ansible `changed` flag on its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.node.processes import scan_processes

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
# Every playbook output of the suite is kept here (git-ignored), one file per run.
RUN_LOG_ROOT = ARTIFACTS_DIR / "integration"
# Seconds for POST /images: a cold build of both Dask images takes up to 8 minutes here.
IMAGES_TIMEOUT = 1800

# Where a failed run explains itself: a task failure or an error line.
FAILURE_START = re.compile(r"^(fatal:|failed:|ERROR!|\[ERROR\])", re.MULTILINE)
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$", re.MULTILINE)


class SandboxNotRunning(RuntimeError):
    """The sandbox state files or admin API are missing."""


def sandbox_dir() -> Path:
    return Path(os.environ.get("DASK_GKE_SANDBOX_DIR", str(REPO_ROOT / ".sandbox")))


def sandbox_env() -> dict[str, str]:
    """The variables of `.sandbox/env.json` (docs/contracts.md)."""
    path = sandbox_dir() / "env.json"
    if not path.is_file():
        raise SandboxNotRunning(f"{path} is missing: start the sandbox with `make sandbox`")
    return json.loads(path.read_text())


def scenario_name() -> str:
    return os.environ.get("MOLECULE_SCENARIO_NAME", "adhoc")


def load_yaml(path: Path) -> Any:
    import yaml  # noqa: PLC0415 - ansible's dependency, only needed by a few tests

    return yaml.safe_load(path.read_text())


def load_cases(path: Path, *fields: str) -> list:
    """A table of test cases kept as data: a YAML list of mappings, each with an `id` and
    exactly `fields`; one pytest.param per case, of its `fields` in that order."""
    import pytest  # noqa: PLC0415 - only the tests of a case table need it

    params = []
    for case in load_yaml(path):
        if set(case) != {"id", *fields}:
            raise ValueError(f"{path}: case {case.get('id')!r} must have id, {', '.join(fields)}")
        params.append(pytest.param(*(case[name] for name in fields), id=case["id"]))
    return params


# ---- the sandbox admin API ---------------------------------------------------------------


class AdminApi:
    """Client of the sandbox admin API (SANDBOX_ADMIN_URL): state, request log, faults."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        # Loopback only: never route admin calls through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - base_url is the loopback admin URL
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"admin API {method} {path}: HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise SandboxNotRunning(f"admin API {self.base_url} unreachable: {exc.reason}") from exc
        return json.loads(raw) if raw.strip() else None

    def healthy(self) -> bool:
        try:
            self._call("GET", "/healthz")
        except (SandboxNotRunning, RuntimeError, json.JSONDecodeError):
            return False
        return True

    def state(self) -> dict:
        return self._call("GET", "/state")

    def requests(self, host: str = "container.googleapis.com") -> list[dict]:
        """The emulator's request log: GKE API calls, or another host's ("*": every host)."""
        answer = self._call("GET", f"/requests?host={host}")
        # Accept a bare list or {"requests": [...]}: the contract fixes the entries only.
        return answer["requests"] if isinstance(answer, dict) else answer

    def expire_tokens(self) -> int:
        """End every Google access token issued so far (as an hour passing would)."""
        return self._call("POST", "/tokens/expire")["expired"]

    def add_dask_images(self, version: str) -> list[str]:
        """Build (cached) and import a Dask version's images into the real nodes, as a
        registry would serve them; returns the versions the nodes carry."""
        answer = self._call("POST", "/images", {"dask_version": version}, timeout=IMAGES_TIMEOUT)
        return answer["dask_versions"]

    def leaked_forwarding_rules(self) -> list[dict]:
        """Forwarding rules a cluster delete left behind (LoadBalancers deleted last)."""
        return self.state().get("leakedForwardingRules", [])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def faults(self) -> dict:
        return self._call("GET", "/faults")

    def set_faults(self, settings: dict) -> None:
        self._call("PUT", "/faults", settings)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def clusters(self) -> list[dict]:
        return self.state().get("clusters", [])

    def cluster(self, name: str) -> dict | None:
        return next((c for c in self.clusters() if c.get("name") == name), None)


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def writes(entries: Iterable[dict]) -> list[dict]:
    """The calls of a request log that change something (creates, deletes, resizes)."""
    return [e for e in entries if e.get("method") in WRITE_METHODS]


def describe_requests(entries: Iterable[dict]) -> str:
    lines = [
        f"{e.get('ts', '?')} {e.get('method', '?'):6} {e.get('status', '?')} "
        f"{e.get('path', '?')}{' fault=' + str(e['fault']) if e.get('fault') else ''}"
        for e in entries
    ]
    return "\n".join(lines) or "(no GKE API call)"


# ---- playbook runs -----------------------------------------------------------------------


# Seconds a run's async wrappers may outlive it (they poll their job every 5 s).
ASYNC_WRAPPER_GRACE = 10.0


@dataclass
class PlaybookRun:
    """One finished ansible-playbook run."""

    argv: list[str]
    returncode: int
    output: str
    seconds: float
    log_path: Path
    leftovers: Callable[[], list[tuple[int, str]]]  # processes of the run still alive
    finished: datetime
    timed_out: bool = False

    def recap(self, host: str = "localhost") -> dict[str, int]:
        """The PLAY RECAP counters of `host` ({} when the run printed no recap)."""
        for match in RECAP_LINE.finditer(self.output):
            if match.group("host") == host:
                pairs = (item.split("=") for item in match.group("counts").split())
                return {key: int(value) for key, value in pairs}
        return {}

    def lingering(self, grace: float = ASYNC_WRAPPER_GRACE) -> list[tuple[int, str]]:
        """Processes of the run still alive `grace` seconds after it ended.

        Ansible's async wrapper checks its job only every 5 s, so it may outlive
        a run that finished right after an async task by up to that long; a
        process alive after the grace period really was left behind.
        """
        deadline = time.monotonic() + grace
        while (alive := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return alive

    def failure(self) -> str:
        """The output from Ansible's first failure or error line on ("" when none)."""
        start = FAILURE_START.search(self.output)
        return self.output[start.start() :] if start else ""

    def describe(self, tail: int = 60) -> str:
        """What a person needs when an assertion on this run fails."""
        lines = self.output.rstrip().splitlines()
        shown = "\n".join(lines[-tail:])
        state = "timed out" if self.timed_out else f"rc={self.returncode}"
        return (
            f"\n$ {' '.join(self.argv)}\n{state} after {self.seconds:.1f}s, "
            f"full output: {self.log_path}\n--- last {min(tail, len(lines))} lines ---\n{shown}"
        )


def _next_log_path(label: str) -> Path:
    directory = RUN_LOG_ROOT / scenario_name()
    directory.mkdir(parents=True, exist_ok=True)
    index = len(list(directory.glob("*.log"))) + 1
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    return directory / f"{index:02d}-{safe}.log"


def playbook_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's run from the repository root: the repo's ansible.cfg.

    Molecule exports its own ANSIBLE_CONFIG and paths to the verifier; a run made by a
    test must behave like `ansible-playbook deploy.yml` typed at the repo root.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ANSIBLE_") and key != "PYTEST_CURRENT_TEST"
    }
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides or {})
    return env


def scenario_vars_file() -> Path | None:
    """The scenario's extra-variables file, given to its converge by molecule.yml."""
    directory = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    path = Path(directory, "vars", "scenario.yml") if directory else None
    return path if path and path.is_file() else None


def playbook_argv(
    playbook: str,
    extra_vars: dict[str, Any] | None = None,
    tags: str | None = None,
    args: Iterable[str] = (),
) -> list[str]:
    """argv of a run with the scenario's variables (as its converge), then `extra_vars`."""
    argv = ["ansible-playbook", playbook]
    if scenario_vars_file():
        argv += ["-e", f"@{scenario_vars_file()}"]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if tags:
        argv += ["--tags", tags]
    return argv + list(args)


@dataclass
class RunningPlaybook:
    """An ansible-playbook started in its own process group (so it can be killed whole)."""

    argv: list[str]
    process: subprocess.Popen
    log_path: Path
    tmp_dir: Path
    started: float = field(default_factory=time.monotonic)

    def leftovers(self) -> list[tuple[int, str]]:
        """Live processes of this run (see processes_of_run)."""
        return processes_of_run(self.process.pid, self.tmp_dir)

    def wait(self, timeout: float) -> PlaybookRun:
        timed_out = False
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
        return PlaybookRun(
            argv=self.argv,
            returncode=self.process.returncode,
            output=self.log_path.read_text(errors="replace"),
            seconds=time.monotonic() - self.started,
            log_path=self.log_path,
            leftovers=self.leftovers,
            finished=datetime.now(UTC),
            timed_out=timed_out,
        )

    def kill(self) -> None:
        """SIGKILL the run: ansible-playbook's process group, then every process of the run
        outside it (workers in sessions of their own, daemonized async modules)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        for pid, _ in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: not self.leftovers(),
            timeout=30,
            what=f"the processes of the killed run {self.log_path.name} to exit",
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_playbook(
    playbook: str,
    *,
    extra_vars: dict[str, Any] | None = None,
    tags: str | None = None,
    args: Iterable[str] = (),
    label: str | None = None,
    env: dict[str, str] | None = None,
) -> RunningPlaybook:
    argv = playbook_argv(playbook, extra_vars, tags, args)
    log_path = _next_log_path(label or Path(playbook).stem)
    log_path.touch(mode=0o600)
    # A temporary directory of its own: every module process of the run (async ones too,
    # which leave the session) carries it in its command line.
    tmp_dir = log_path.with_suffix(".tmp")
    # Module payloads carry their arguments (tokens included): owner only.
    tmp_dir.mkdir(mode=0o700, exist_ok=True)
    run_env = {
        "ANSIBLE_REMOTE_TMP": str(tmp_dir),
        "ANSIBLE_LOCAL_TEMP": str(tmp_dir / "local"),
        "ANSIBLE_ASYNC_DIR": str(tmp_dir / "async"),
        **(env or {}),
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=playbook_env(run_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningPlaybook(argv, process, log_path, tmp_dir)


def run_playbook(playbook: str, *, timeout: float = 900, **options: Any) -> PlaybookRun:
    """Run ansible-playbook from the repo root as a user would (`options`: start_playbook's
    extra_vars, tags, args, label, env); bounded by `timeout`."""
    return start_playbook(playbook, **options).wait(timeout)


# Seconds a scenario's deploy.yml or cleanup.yml run may take, where its test sets no bound.
RUN_TIMEOUT = 600


def deploy(*, timeout: float = RUN_TIMEOUT, **options: Any) -> PlaybookRun:
    """Run deploy.yml (options as run_playbook's)."""
    return run_playbook("deploy.yml", timeout=timeout, **options)


def cleanup(
    cluster: str,
    *,
    extra_vars: dict[str, Any] | None = None,
    timeout: float = RUN_TIMEOUT,
    **options: Any,
) -> PlaybookRun:
    """Run cleanup.yml confirming the teardown of `cluster`; `extra_vars` come on top."""
    confirmed = {"cleanup_confirm_cluster": cluster, **(extra_vars or {})}
    return run_playbook("cleanup.yml", extra_vars=confirmed, timeout=timeout, **options)


def run_play(play: dict[str, Any], label: str, args: Iterable[str] = (), timeout: float = 120):
    """Run one generated play on localhost (sandbox inventory, scenario variables).

    Goes through the JSON callback; returns its report ({"plays": [...], "stats": ...}).
    """
    import yaml  # noqa: PLC0415

    log_path = _next_log_path(label)
    playbook = log_path.with_suffix(".yml")
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", **play}], sort_keys=False))
    argv = playbook_argv(str(playbook), args=args)
    env = playbook_env(
        {
            # JSON on stdout, and only JSON: no profile_tasks summary after it.
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
        }
    )
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    log_path.write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"{' '.join(argv)} printed no JSON report ({exc}); rc={result.returncode}, "
            f"see {log_path}\n{result.stderr[-2000:]}"
        ) from exc


def task_results(report: dict) -> list[dict]:
    """The localhost result of every task of a run_play report, in order."""
    return [
        task["hosts"]["localhost"]
        for play in report["plays"]
        for task in play["tasks"]
        if "localhost" in task["hosts"]
    ]


def run_module(module: str, module_args: dict[str, Any], label: str) -> dict:
    """Run one module task and return its result as a registered variable would hold it."""
    play = {
        "name": f"Run {module}",
        "gather_facts": False,
        "tasks": [{"name": f"Run {module}", module: module_args}],
    }
    results = task_results(run_play(play, label))
    assert results, f"{module} gave no result"
    return results[-1]


ROLES = ("gke_cluster", "helm_tiller", "dask_chart")


def resolve_settings(names: Iterable[str]) -> dict[str, Any]:
    """The values the playbooks see: role defaults < sandbox inventory < scenario variables.

    The roles are listed in the play only for their defaults; `--tags` skips their tasks.
    Never ask for a secret here: the answer is written to the run's log.
    """
    names = sorted(names)
    play = {
        "name": "Resolve settings",
        "gather_facts": False,
        "roles": list(ROLES),
        "tasks": [
            {
                "name": "Show the settings",
                "ansible.builtin.debug": {"msg": {n: "{{ " + n + " }}" for n in names}},
                "tags": ["dask_gke_test_settings"],
            }
        ],
    }
    args = ["--tags", "dask_gke_test_settings", "--skip-tags", "always"]
    results = task_results(run_play(play, "settings", args))
    assert results and not results[-1].get("failed"), f"settings unresolved: {results}"
    return results[-1]["msg"]


# ---- Kubernetes, kubectl and helm ---------------------------------------------------------


def kubeconfig_path(cluster: str) -> Path:
    """Where gke_cluster writes the kubeconfig by default (artifacts/<cluster>/kubeconfig)."""
    return ARTIFACTS_DIR / cluster / "kubeconfig"


def endpoints_path(cluster: str) -> Path:
    """Where dask_chart writes the endpoints by default (artifacts/<cluster>/endpoints.json)."""
    return ARTIFACTS_DIR / cluster / "endpoints.json"


def python_in_pod(core, pod: str, namespace: str, code: str) -> str:
    """What `python -c code` prints in the pod's first container (exec through the kubelet)."""
    from kubernetes.stream import stream  # noqa: PLC0415 - only the data-plane tests exec

    return stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=["python", "-c", code],
        stderr=True,
        stdout=True,
        stdin=False,
        tty=False,
    )


def kube_client(kubeconfig: Path):
    """A kubernetes ApiClient for the cluster of `kubeconfig` (no proxy: loopback only)."""
    from kubernetes import config  # noqa: PLC0415 - heavy import, only for cluster tests

    return config.new_client_from_config(config_file=str(kubeconfig))


def run_tool(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run a sandbox binary; bounded, output captured, never raising on rc."""
    full_env = {**os.environ, **(env or {})}
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        full_env.pop(proxy, None)  # kube API servers are on loopback
    return subprocess.run(
        argv, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def helm(
    sandbox: dict[str, str], kubeconfig: Path, *args: str, binary: str = "HELM_BIN"
) -> subprocess.CompletedProcess:
    env = {
        key: sandbox[key]
        for key in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME")
        if key in sandbox
    }
    return run_tool([sandbox[binary], "--kubeconfig", str(kubeconfig), *args], env)


def kubectl(sandbox: dict[str, str], kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return run_tool([sandbox["KUBECTL_BIN"], "--kubeconfig", str(kubeconfig), *args])


def helm_release(sandbox: dict[str, str], kubeconfig: Path, release: str, namespace: str) -> dict:
    """`helm list` entry of the release ({} when absent)."""
    result = helm(sandbox, kubeconfig, "list", "-n", namespace, "-o", "json")
    if result.returncode != 0:
        raise RuntimeError(f"helm list failed (rc={result.returncode}): {result.stderr}")
    return next((r for r in json.loads(result.stdout) if r["name"] == release), {})


# ---- waits and processes ------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll `predicate` until it returns something truthy; used only where no event exists."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def processes(pattern: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line matches `pattern`."""
    regex = re.compile(pattern)
    found = []
    for pid, (raw,) in scan_processes("cmdline"):
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if command and regex.search(command):
            found.append((pid, command))
    return found


def processes_of_run(session: int, tmp_dir: Path) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes a playbook run started.

    Ansible's workers leave the run's session (os.setsid) and keep ansible-playbook's
    command line, and async modules daemonize: a process belongs to the run when it is
    in the run's session, or names the run's tmp dir in its command line or environment.
    """
    marker = str(tmp_dir).encode()
    found = []
    for pid, (stat, command, environment) in scan_processes("stat", "cmdline", "environ"):
        # Fields after the parenthesised command: state, ppid, pgrp, session, ...
        fields = stat.rsplit(b")", 1)[1].split()
        if fields[0] == b"Z":
            continue
        if int(fields[3]) == session or marker in command or marker in environment:
            found.append((pid, command.replace(b"\0", b" ").decode().strip()))
    return found


# ---- Jupyter password hashes --------------------------------------------------------------

HASH_PATTERN = re.compile(r"(?:sha1|sha256|sha512):[0-9a-f]+:[0-9a-f]+|argon2:\$argon2[^'\"\s]+")


def jupyter_password_hashes(text: str) -> list[str]:
    """Every Jupyter password hash (`passwd()` format) found in `text`."""
    return HASH_PATTERN.findall(text)


def jupyter_hash_matches(hashed: str, password: str) -> bool:
    """Whether `password` matches a Jupyter `passwd()` hash (argon2 or salted sha)."""
    algorithm, _, rest = hashed.partition(":")
    if algorithm == "argon2":
        from argon2 import PasswordHasher  # noqa: PLC0415
        from argon2.exceptions import VerificationError  # noqa: PLC0415

        try:
            return PasswordHasher().verify(rest, password)
        except VerificationError:
            return False
    salt, _, digest = rest.partition(":")
    computed = hashlib.new(algorithm, password.encode() + salt.encode("ascii")).hexdigest()
    return hmac.compare_digest(computed, digest)


def secret_variants(secret: str) -> list[str]:
    """The forms a leaked secret takes in a log: plain, JSON-escaped, base64."""
    return sorted({secret, json.dumps(secret)[1:-1], base64.b64encode(secret.encode()).decode()})


# ---- diagnostics --------------------------------------------------------------------------


def tail(path: Path, lines: int) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(content[-lines:])


def diagnostics(request_count: int = 25, log_lines: int = 25, log_files: int = 6) -> str:
    """The emulator's last requests and faults, and the tails of the newest sandbox logs."""
    parts = []
    try:
        admin = AdminApi(sandbox_env()["SANDBOX_ADMIN_URL"])
        entries = admin.requests()[-request_count:]
        parts.append(f"== emulator: last {len(entries)} GKE API requests ==")
        parts.append(describe_requests(entries))
        parts.append(f"== emulator: fault settings == {json.dumps(admin.faults())}")
        clusters = [
            f"{c.get('name')}: {c.get('status')} {c.get('statusMessage', '')}".rstrip()
            for c in admin.clusters()
        ]
        parts.append("== emulator: clusters ==\n" + ("\n".join(clusters) or "(none)"))
    except (SandboxNotRunning, RuntimeError, KeyError) as exc:
        log = sandbox_dir() / "requests.jsonl"
        parts.append(f"== emulator unavailable ({exc}); {log} ==\n{tail(log, request_count)}")
    logs = sorted(
        (sandbox_dir() / "logs").glob("**/*.log"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in logs[:log_files]:
        parts.append(f"== tail of {path} ==\n{tail(path, log_lines)}")
    return "\n".join(parts)
