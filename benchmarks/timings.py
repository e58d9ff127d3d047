"""Where the time of an ansible-playbook run goes, from the dask_gke_bench callback's file."""

import re
from datetime import datetime

PREFLIGHT = "preflight"
STARTUP = "start-up"  # process start to first task: Python, Ansible, inventory, parsing
WRAP_UP = "wrap-up"  # last result to process exit

_RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


def phase_of(task: dict) -> str:
    """The phase a task is counted in: the preflight play, else its role, else its play."""
    if task["play"].lower().startswith(PREFLIGHT):
        return PREFLIGHT
    return task["role"] or f"play: {task['play']}"


def task_durations(document: dict) -> list[dict]:
    """Every task with `seconds` from its start to the next task's start.

    Counting up to the next start (as profile_tasks does) gives the time between
    tasks (templating of the next one, includes) to the task before, so the
    durations add up to the whole playbook.
    """
    tasks = document["tasks"]
    starts = [t["start"] for t in tasks[1:]] + [document["ended"]]
    return [
        {**task, "seconds": max(0.0, following - task["start"])}
        for task, following in zip(tasks, starts, strict=True)
    ]


def phase_breakdown(document: dict, process_start: float, process_end: float) -> dict[str, float]:
    """Seconds per phase, in run order, plus start-up and wrap-up; they sum to the wall time."""
    phases: dict[str, float] = {}
    tasks = task_durations(document)
    phases[STARTUP] = (tasks[0]["start"] if tasks else document["ended"]) - process_start
    for task in tasks:
        phase = phase_of(task)
        phases[phase] = phases.get(phase, 0.0) + task["seconds"]
    phases[WRAP_UP] = process_end - document["ended"]
    return {name: round(max(0.0, seconds), 3) for name, seconds in phases.items()}


def slowest_tasks(document: dict, count: int = 10) -> list[dict]:
    ranked = sorted(task_durations(document), key=lambda t: t["seconds"], reverse=True)
    return [
        {
            "phase": phase_of(t),
            "task": t["task"],
            "seconds": round(t["seconds"], 3),
            "status": t["status"],
        }
        for t in ranked[:count]
    ]


def recap_totals(document: dict) -> dict[str, int]:
    """The play recap summed over hosts (ok, changed, failures, ...)."""
    totals: dict[str, int] = {}
    for counts in document["recap"].values():
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + int(value)
    return totals


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines of ansible-playbook's output, by host (a cross-check of the file)."""
    lines = output.split("PLAY RECAP", 1)[1].splitlines() if "PLAY RECAP" in output else []
    recap = {}
    for line in lines:
        match = _RECAP.match(line.strip())
        if match:
            recap[match["host"]] = {
                name: int(value)
                for name, value in (pair.split("=") for pair in match["counts"].split())
            }
    return recap


def wait_api_calls(document: dict) -> list[dict]:
    """Kubernetes API calls of each wait task the callback measured."""
    waits = []
    for task in task_durations(document):
        if "api_calls" in task or "api_calls_error" in task:
            calls = task.get("api_calls", {})
            waits.append(
                {
                    "phase": phase_of(task),
                    "task": task["task"],
                    "seconds": round(task["seconds"], 3),
                    "reads": calls.get("reads"),
                    "writes": calls.get("writes"),
                    "by_call": calls.get("by_call", {}),
                    "error": task.get("api_calls_error"),
                }
            )
    return waits


def epoch(timestamp: str) -> float:
    """Seconds since the epoch of an ISO 8601 time with its offset (emulator log, module output)."""
    return datetime.fromisoformat(timestamp).timestamp()


def gke_calls_by_phase(requests: list[dict], document: dict) -> dict[str, dict[str, int]]:
    """Emulator request log entries counted per phase, by HTTP method, from their times."""
    windows = [
        (t["start"], t["start"] + t["seconds"], phase_of(t)) for t in task_durations(document)
    ]
    counts: dict[str, dict[str, int]] = {}
    for entry in requests:
        when = epoch(entry["ts"])
        phase = next((name for start, end, name in windows if start <= when < end), "outside tasks")
        by_method = counts.setdefault(phase, {})
        by_method[entry["method"]] = by_method.get(entry["method"], 0) + 1
    return counts
