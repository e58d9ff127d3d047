# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Task timings and API call counts of one ansible-playbook run, for benchmarks/run.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: dask_gke_bench
type: aggregate
short_description: Write task timings and Kubernetes API call counts to a JSON file
description:
  - Records, for every task, its play, role, name, start and result times and status,
    and the host's recap; writes them as JSON to E(DASK_GKE_BENCH_TIMINGS) when the
    playbook ends.
  - For tasks whose name matches E(DASK_GKE_BENCH_WAIT_TASKS), scrapes the API server's
    request counters (kubeconfig E(DASK_GKE_BENCH_KUBECONFIG)) before and after the task.
  - Used by C(make bench) only; enabled through ANSIBLE_CALLBACKS_ENABLED.
requirements:
  - enabled in configuration
"""

import json
import os
import re
import sys
import time
from pathlib import Path

from ansible.plugins.callback import CallbackBase

# benchmarks/ is not an installed package: make `benchmarks.k8s_metrics` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import k8s_metrics


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dask_gke_bench"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._output = os.environ.get("DASK_GKE_BENCH_TIMINGS")
        pattern = os.environ.get("DASK_GKE_BENCH_WAIT_TASKS")
        self._wait_tasks = re.compile(pattern) if pattern else None
        kubeconfig = os.environ.get("DASK_GKE_BENCH_KUBECONFIG")
        self._kubeconfig = Path(kubeconfig) if kubeconfig else None
        self._play = ""
        self._tasks: list[dict] = []
        self._current: dict | None = None
        self._before = None

    # ---- tasks -------------------------------------------------------------

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start_task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start_task(task)

    def _start_task(self, task):
        role = task._role.get_name(include_role_fqcn=False) if task._role else ""
        self._current = {
            "play": self._play,
            "role": role,
            "task": task.name or task.action,
            "action": task.action,
            "start": time.time(),
            "end": None,
            "status": "started",
            "changed": False,
        }
        self._tasks.append(self._current)
        self._before = None
        if self._wait_tasks and self._wait_tasks.search(self._current["task"]):
            self._before, error = k8s_metrics.try_scrape(self._kubeconfig)
            if error:
                self._current["api_calls_error"] = error

    def _end_task(self, result, status):
        record = self._current
        if record is None:
            return
        record["end"] = time.time()
        record["status"] = status
        record["changed"] = bool(result._result.get("changed", False))
        if self._before is not None:
            after, error = k8s_metrics.try_scrape(self._kubeconfig)
            if after is None:
                record["api_calls_error"] = error
            else:
                record["api_calls"] = k8s_metrics.classify(k8s_metrics.delta(self._before, after))
            self._before = None

    def v2_runner_on_ok(self, result):
        self._end_task(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end_task(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._end_task(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._end_task(result, "unreachable")

    # ---- end ---------------------------------------------------------------

    def v2_playbook_on_stats(self, stats):
        if not self._output:
            return
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        document = {"ended": time.time(), "tasks": self._tasks, "recap": recap}
        Path(self._output).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
