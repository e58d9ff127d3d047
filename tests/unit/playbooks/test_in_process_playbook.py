"""Our action plugins in a real ansible-playbook run, in-process and through the module.

A local HTTP stand-in answers as the Kubernetes API, reached only as a forward
proxy: the task names the API server http://kube.invalid (which does not
resolve) and its `environment:` names the proxy, so an answer proves the task
environment reached the kubernetes client's Configuration. A stand-in helm
prints the variable the task sets and the command line of its parent process:
the worker's (ansible-playbook) in-process, a module's Python otherwise. The
connection `dask_gke_test_remote` is the local connection under another name:
with it the action plugins must run the module itself (_execute_module).
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from controller import ansible_playbook

NS = "dask"
API = "http://kube.invalid"
TOKEN = "in-process-test-token"
MARKER = "set by the task"
HELM4 = (
    'version.BuildInfo{Version:"v4.3.1", GitCommit:"", GitTreeState:"", '
    'GoVersion:"go1.26.8", KubeClientVersion:"v1.37"}'
)
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "dask-scheduler", "namespace": NS, "resourceVersion": "90"},
    "spec": {"type": "LoadBalancer", "ports": [{"name": "comm", "port": 8786, "protocol": "TCP"}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.10"}]}},
}
ANSWERS = {
    "/version": {"major": "1", "minor": "36", "gitVersion": "v1.36.3"},
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    f"/api/v1/namespaces/{NS}/services": {
        "kind": "ServiceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "100"},
        "items": [SERVICE],
    },
}

PLAYBOOK = """
- name: Our modules on localhost
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Wait for the scheduler address through the proxy the environment names
      dask_gke.core.wait_for_lb_ip:
        host: {api}
        api_key: {token}
        namespace: {ns}
        names: [dask-scheduler]
        timeout: 10
      environment:
        HTTP_PROXY: "{proxy}"
      register: lb

    - name: Check the stand-in helm with a variable of the task
      dask_gke.core.helm_tiller_version:
        binary_path: {helm}
        min_version: 3.8.0
      environment:
        DASK_GKE_TEST_MARKER: {marker}
      register: helm

    - name: Save the results
      ansible.builtin.copy:
        content: "{{{{ {{'lb': lb, 'helm': helm}} | to_json }}}}"
        dest: {out}
        mode: "0600"
"""

REMOTE_CONNECTION = '''
from __future__ import annotations

DOCUMENTATION = """
name: dask_gke_test_remote
short_description: The local connection under a name that is not local (tests only)
description: [Runs on the controller like local; its transport is not local.]
author: dask-gke contributors
"""

from ansible.plugins.connection.local import Connection as LocalConnection


class Connection(LocalConnection):
    transport = "dask_gke_test_remote"
'''


class Proxy(BaseHTTPRequestHandler):
    """A forward proxy that is itself the API server: it answers only absolute URLs."""

    protocol_version = "HTTP/1.1"
    requests: list[str]

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        url = urlparse(self.path)
        self.requests.append(self.path)
        body = ANSWERS.get(url.path) if f"{url.scheme}://{url.netloc}" == API else None
        if body is None:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def api_behind_proxy():
    """The stand-in on 127.0.0.1: (its proxy URL, the list of the URLs it was asked)."""
    handler = type("RecordingProxy", (Proxy,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def run_play(tmp_path: Path, proxy_url: str, connection: str):
    helm = tmp_path / "helm"
    helm.write_text(
        "#!/bin/sh\n"
        f"echo '{HELM4}'\n"
        'echo "marker=$DASK_GKE_TEST_MARKER" >&2\n'
        "echo \"parent=$(tr '\\0' ' ' < /proc/$PPID/cmdline)\" >&2\n"
    )
    helm.chmod(0o755)
    plugins = tmp_path / "connection_plugins"
    plugins.mkdir()
    (plugins / "dask_gke_test_remote.py").write_text(REMOTE_CONNECTION)
    out = tmp_path / "results.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        PLAYBOOK.format(
            api=API, token=TOKEN, ns=NS, proxy=proxy_url, helm=helm, marker=MARKER, out=out
        )
    )
    run = ansible_playbook(
        tmp_path,
        "-vvv",
        str(playbook),
        "-e",
        f"ansible_connection={connection}",
        env={"ANSIBLE_CONNECTION_PLUGINS": str(plugins), "TMPDIR": str(tmp_path)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text()), run.stdout


def task_output(stdout: str, name: str) -> str:
    """The -vvv output of one task."""
    return stdout.split(f"TASK [{name}]", 1)[1].split("TASK [", 1)[0]


LB_TASK = "Wait for the scheduler address through the proxy the environment names"
HELM_TASK = "Check the stand-in helm with a variable of the task"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Both runs, once: in-process on local, and through the module on the other connection."""
    found = {}
    for connection in ("local", "dask_gke_test_remote"):
        with api_behind_proxy() as (proxy_url, requests):
            results, stdout = run_play(tmp_path_factory.mktemp(connection), proxy_url, connection)
        found[connection] = {"results": results, "stdout": stdout, "requests": requests}
    return found


@pytest.mark.parametrize("connection", ["local", "dask_gke_test_remote"])
def test_the_result_comes_through_the_tasks_proxy(outcomes, connection):
    outcome = outcomes[connection]
    lb = outcome["results"]["lb"]
    assert lb["failed"] is False, lb
    assert lb["services"]["dask-scheduler"]["ip"] == "127.0.0.10"
    assert lb["pending"] == []
    assert lb["relists"] == 1
    assert f"{API}/api/v1/namespaces/{NS}/services" in outcome["requests"]
    assert TOKEN not in outcome["stdout"]
    assert TOKEN not in json.dumps(outcome["results"])


@pytest.mark.parametrize("connection", ["local", "dask_gke_test_remote"])
def test_helm_runs_with_the_tasks_environment(outcomes, connection):
    helm = outcomes[connection]["results"]["helm"]
    assert helm["failed"] is False, helm
    assert helm["client_version"] == "4.3.1"
    assert helm["compatible"] is True
    assert f"marker={MARKER}\n" in helm["stderr"]


def test_local_runs_in_the_worker_without_a_module_process(outcomes):
    outcome = outcomes["local"]
    helm = outcome["results"]["helm"]
    assert "ansible-playbook" in helm["stderr"].split("parent=", 1)[1]
    for task in (LB_TASK, HELM_TASK):
        assert "EXEC " not in task_output(outcome["stdout"], task), task


def test_another_connection_runs_the_module(outcomes):
    outcome = outcomes["dask_gke_test_remote"]
    helm = outcome["results"]["helm"]
    assert "ansible-playbook" not in helm["stderr"].split("parent=", 1)[1]
    for task in (LB_TASK, HELM_TASK):
        assert "EXEC " in task_output(outcome["stdout"], task), task


def test_both_paths_return_the_same_keys_and_values(outcomes):
    local, module = (outcomes[c]["results"] for c in ("local", "dask_gke_test_remote"))
    assert set(local["lb"]) == set(module["lb"])
    assert set(local["helm"]) == set(module["helm"])
    for helm in (local["helm"], module["helm"]):
        assert helm["command"] == f"{helm['binary_path']} version"
    # The stand-in's path (each run has its own) and its parent process differ.
    varying = {"binary_path", "command", "stderr", "stderr_lines"}
    assert {k: v for k, v in local["helm"].items() if k not in varying} == {
        k: v for k, v in module["helm"].items() if k not in varying
    }
    scheduler = [r["lb"]["services"]["dask-scheduler"] for r in (local, module)]
    for seen in scheduler:
        seen.pop("ready_after")
        seen.pop("seen_at")
    assert scheduler[0] == scheduler[1]
