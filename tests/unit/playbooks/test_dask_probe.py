"""roles/dask_chart/files/dask_probe.py against a real Dask scheduler and worker on
loopback: the versions they report, the computation, and the answers that fail."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest

REPO = Path(__file__).resolve().parents[3]
PROBE = REPO / "roles/dask_chart/files/dask_probe.py"
DASK = Path(sys.executable).parent / "dask"
START_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROBE), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A scheduler and one worker of the installed distributed, on 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    common = {"cwd": workdir, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [
                str(DASK),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--dashboard-address",
                "127.0.0.1:0",
                "--no-show",
            ],
            **common,
        ),
    ]
    try:
        processes.append(
            subprocess.Popen(
                [
                    str(DASK),
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--local-directory",
                    str(workdir),
                ],
                **common,
            )
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            answer = probe(address, "1", "2", cwd=workdir)
            if answer.returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no Dask scheduler with a worker at {address}: {answer.stderr}")
        yield address, workdir
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_the_versions_of_the_scheduler_and_each_worker(scheduler):
    address, workdir = scheduler
    answer = probe(address, "1", "30", cwd=workdir)
    assert answer.returncode == 0, answer.stderr
    reported = json.loads(answer.stdout)
    assert reported["scheduler"] == dask.__version__
    assert list(reported["workers"].values()) == [dask.__version__]
    assert next(iter(reported["workers"])).startswith("tcp://127.0.0.1:")
    assert reported["computed"] is None


def test_compute_runs_the_sum_on_the_workers(scheduler):
    address, workdir = scheduler
    answer = probe(address, "1", "30", "--compute", cwd=workdir)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["computed"] == sum(range(101))


def test_fewer_workers_than_expected_fail_within_the_timeout(scheduler):
    address, workdir = scheduler
    started = time.monotonic()
    answer = probe(address, "2", "3", cwd=workdir)
    assert answer.returncode == 1
    assert answer.stdout == ""
    assert address in answer.stderr
    assert "TimeoutError" in answer.stderr, answer.stderr
    assert time.monotonic() - started < 60


def test_no_scheduler_is_an_answer_naming_the_address(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    answer = probe(address, "1", "2", "--compute", cwd=tmp_path)
    assert answer.returncode == 1
    assert answer.stdout == ""
    assert answer.stderr.startswith(f"{address}: "), answer.stderr
