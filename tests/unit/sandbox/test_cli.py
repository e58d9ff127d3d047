"""sandbox.cli up/status/down with the fake backend, as separate processes."""

import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest
import requests

from sandbox.node.processes import alive
from tests.unit.sandbox.commands import run
from tests.unit.sandbox.conftest import free_port_base

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli(tmp_path):
    base = free_port_base()
    env = {
        **os.environ,
        "DASK_GKE_SANDBOX_DIR": str(tmp_path),
        "DASK_GKE_SANDBOX_PORT_BASE": str(base),
    }

    def sandbox_cli(*args):
        return run(
            [sys.executable, "-m", "sandbox.cli", *args], env=env, cwd=REPO_ROOT, timeout=120
        )

    sandbox_cli.dir = tmp_path
    sandbox_cli.base = base
    yield sandbox_cli
    sandbox_cli("down")
    pid_file = tmp_path / "pids" / "daemon.pid"
    if pid_file.exists():  # down failed: do not leave our daemon behind
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def daemon_pid(cli) -> int:
    return int((cli.dir / "pids" / "daemon.pid").read_text())


def test_up_is_idempotent_and_writes_the_environment(cli):
    first = cli("up", "--backend", "fake")
    assert first.returncode == 0, first.stderr
    pid = daemon_pid(cli)
    second = cli("up", "--backend", "fake")
    assert second.returncode == 0, second.stderr
    assert daemon_pid(cli) == pid
    assert "already running" in second.stderr

    env = json.loads((cli.dir / "env.json").read_text())
    token = (cli.dir / "token").read_text().strip()
    assert env["GCP_ACCESS_TOKEN"] == token
    assert env["HTTPS_PROXY"] == f"http://127.0.0.1:{cli.base}"
    assert env["SANDBOX_ADMIN_URL"] == f"http://127.0.0.1:{cli.base + 1}"
    assert env["SANDBOX_CHART_REPO_URL"] == f"http://127.0.0.1:{cli.base + 2}"
    assert env["REQUESTS_CA_BUNDLE"] == str(cli.dir / "ca" / "ca.pem")
    assert env["HELM_BIN"] == str(Path(env["SANDBOX_BIN_DIR"]) / "helm")
    for name in ("token", "env", "env.json"):
        assert stat.S_IMODE((cli.dir / name).stat().st_mode) == 0o600, name
    shell_env = (cli.dir / "env").read_text()
    assert f"export GCP_PROJECT={env['GCP_PROJECT']}" in shell_env
    assert "export PATH=" in shell_env

    health = requests.get(f"{env['SANDBOX_ADMIN_URL']}/healthz", timeout=5)
    assert health.status_code == 200


def test_status_reports_up_and_down(cli):
    assert cli("status").returncode == 3
    assert cli("up", "--backend", "fake").returncode == 0
    status = cli("status", "--json")
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["up"] is True
    assert report["ports"]["gke_api"] == cli.base + 3
    assert report["pids"]["daemon"] == {"pid": daemon_pid(cli), "alive": True}
    human = cli("status")
    assert human.returncode == 0
    assert "daemon: up" in human.stdout


def test_down_stops_the_daemon_and_can_run_twice(cli):
    assert cli("up", "--backend", "fake").returncode == 0
    pid = daemon_pid(cli)
    down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not (cli.dir / "pids" / "daemon.pid").exists()
    assert not (cli.dir / "env.json").exists()
    assert not alive(pid)
    assert cli("down").returncode == 0
    assert cli("status").returncode == 3
