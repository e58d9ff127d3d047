"""Run ansible-playbook (or ansible) the way a user does, timed, with its peak memory."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.procmem import PeakTreeMemory
from benchmarks.sandbox_api import REPO_ROOT, BenchError
from sandbox.subprocesses import start_logged

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
# Tasks whose Kubernetes API calls are counted: the roles' waits.
WAIT_TASKS = r"^(ready|verify) \| Wait"


@dataclass
class AnsibleRun:
    argv: list[str]
    returncode: int
    wall: float  # seconds from process start to exit
    started: float  # epoch seconds
    ended: float
    peak_rss_bytes: int
    log: Path
    timings: dict | None = None  # the dask_gke_bench callback's document
    output_tail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def bench_environment(timings: Path | None, kubeconfig: Path | None) -> dict[str, str]:
    """The caller's environment plus our callback; profile_tasks and profile_roles show in logs."""
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_PLUGINS": str(BENCH_DIR / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": (
            "ansible.posix.profile_tasks,ansible.posix.profile_roles,dask_gke_bench"
        ),
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "30",
        "ANSIBLE_NOCOLOR": "1",
        "DASK_GKE_BENCH_WAIT_TASKS": WAIT_TASKS,
    }
    if timings is not None:
        env["DASK_GKE_BENCH_TIMINGS"] = str(timings)
    if kubeconfig is not None:
        env["DASK_GKE_BENCH_KUBECONFIG"] = str(kubeconfig)
    return env


def run(
    argv: list[str], log: Path, timeout: float, env: dict[str, str], timings: Path | None = None
) -> AnsibleRun:
    """Run argv from the repository root; output to `log`; bounded by `timeout` seconds."""
    if timings is not None:
        timings.unlink(missing_ok=True)
    with log.open("w", encoding="utf-8") as output:
        started = time.time()
        # Own session: on timeout the whole tree (modules, helm) is stopped, and only it.
        process = start_logged(argv, output, cwd=REPO_ROOT, env=env)
        with PeakTreeMemory(process.pid) as memory:
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
                raise BenchError(
                    f"{' '.join(argv[:2])} did not end within {timeout:.0f} s (log: {log})"
                ) from None
        ended = time.time()
    document = None
    if timings is not None and timings.is_file():
        document = json.loads(timings.read_text(encoding="utf-8"))
    tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
    return AnsibleRun(
        argv=argv,
        returncode=returncode,
        wall=round(ended - started, 3),
        started=started,
        ended=ended,
        peak_rss_bytes=memory.peak_bytes,
        log=log,
        timings=document,
        output_tail=tail if returncode else "",
    )


def playbook(
    args: list[str], run_dir: Path, label: str, timeout: float, kubeconfig: Path | None = None
) -> AnsibleRun:
    """ansible-playbook <args>, with task timings in <run_dir>/<label>.timings.json."""
    timings = run_dir / f"{label}.timings.json"
    argv = [str(VENV_BIN / "ansible-playbook"), *args]
    return run(
        argv, run_dir / f"{label}.log", timeout, bench_environment(timings, kubeconfig), timings
    )


def module(name: str, module_args: dict, run_dir: Path, label: str, timeout: float) -> tuple:
    """`ansible localhost -m <name>` with the JSON stdout callback: (AnsibleRun, module result)."""
    argv = [str(VENV_BIN / "ansible"), "localhost", "-m", name, "-a", json.dumps(module_args)]
    # Only the JSON on stdout: our callback (writing nothing here) replaces profile_tasks.
    env = {
        **bench_environment(None, None),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACKS_ENABLED": "dask_gke_bench",
    }
    result = run(argv, run_dir / f"{label}.log", timeout, env)
    return result, module_result(result.log.read_text(encoding="utf-8"))


def module_result(output: str) -> dict:
    """The localhost result in the output of ansible's JSON callback (text around it ignored)."""
    start = output.find("{")
    if start < 0:
        raise BenchError(f"no JSON in the ansible output: {output[-500:]}")
    document = json.loads(output[start : output.rindex("}") + 1])
    return document["plays"][0]["tasks"][0]["hosts"]["localhost"]
