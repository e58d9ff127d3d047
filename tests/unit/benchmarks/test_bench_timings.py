"""Phase breakdown, recap and API call attribution of a playbook run."""

import pytest

from benchmarks import timings


def task(play, role, name, start, **extra):
    return {
        "play": play,
        "role": role,
        "task": name,
        "start": start,
        "status": "ok",
        "changed": False,
        **extra,
    }


DOCUMENT = {
    "ended": 1000.0 + 60.0,
    "recap": {"localhost": {"ok": 40, "changed": 3, "failures": 0, "skipped": 5}},
    "tasks": [
        task("Preflight", "", "Check the Ansible version", 1002.0),
        task("Preflight", "gke_cluster", "validate | Check gke_cluster_project", 1002.5),
        task("Deploy Dask on GKE", "gke_cluster", "read | List the clusters", 1003.0),
        task(
            "Deploy Dask on GKE",
            "gke_cluster",
            "ready | Wait for the nodes",
            1030.0,
            api_calls={"reads": 4, "writes": 0, "by_call": {"LIST nodes": 4}},
        ),
        task("Deploy Dask on GKE", "helm_tiller", "Read the Helm version", 1035.0),
        task(
            "Deploy Dask on GKE",
            "dask_chart",
            "verify | Wait for the Deployments",
            1040.0,
            api_calls_error="no kubeconfig at x",
        ),
        task("Deploy Dask on GKE", "", "debug", 1058.0),
    ],
}


def test_task_durations_run_to_the_next_start():
    durations = [t["seconds"] for t in timings.task_durations(DOCUMENT)]
    assert durations == [0.5, 0.5, 27.0, 5.0, 5.0, 18.0, 2.0]


def test_phase_breakdown_sums_to_the_wall_time():
    phases = timings.phase_breakdown(DOCUMENT, process_start=1000.0, process_end=1061.0)
    assert phases == {
        "start-up": 2.0,
        "preflight": 1.0,  # the role's validate tasks inside the preflight play count there
        "gke_cluster": 32.0,
        "helm_tiller": 5.0,
        "dask_chart": 18.0,
        "play: Deploy Dask on GKE": 2.0,
        "wrap-up": 1.0,
    }
    assert sum(phases.values()) == pytest.approx(61.0)


def test_slowest_tasks_first():
    slowest = timings.slowest_tasks(DOCUMENT, count=2)
    assert [(t["phase"], t["task"], t["seconds"]) for t in slowest] == [
        ("gke_cluster", "read | List the clusters", 27.0),
        ("dask_chart", "verify | Wait for the Deployments", 18.0),
    ]


def test_recap_totals_and_the_printed_recap_agree():
    counts = "ok=40   changed=3    unreachable=0    failed=0    skipped=5    rescued=0    ignored=0"
    output = (
        f"TASK [x] ****\nok: [localhost]\n\nPLAY RECAP ****\n"
        f"localhost                  : {counts}\n\n"
        "Thursday 26 November 2026  14:10:00 +0000 (0:00:01.000)       0:01:00.000 ****\n"
    )
    printed = timings.parse_recap(output)["localhost"]
    assert printed["changed"] == timings.recap_totals(DOCUMENT)["changed"] == 3
    assert printed["ok"] == 40
    assert timings.parse_recap("no recap here") == {}


def test_wait_api_calls_lists_measured_tasks_and_errors():
    waits = timings.wait_api_calls(DOCUMENT)
    assert [(w["task"], w["reads"], w["error"]) for w in waits] == [
        ("ready | Wait for the nodes", 4, None),
        ("verify | Wait for the Deployments", None, "no kubeconfig at x"),
    ]


def test_gke_calls_are_counted_in_the_phase_whose_window_holds_them():
    requests = [
        {"ts": "1970-01-01T00:16:43.500+00:00", "method": "GET"},  # 1003.5: read
        {"ts": "1970-01-01T00:16:50.000+00:00", "method": "POST"},  # 1010: read task window
        {"ts": "1970-01-01T00:17:15.000+00:00", "method": "GET"},  # 1035: helm_tiller
        {"ts": "1970-01-01T00:16:40.000+00:00", "method": "GET"},  # 1000: before any task
    ]
    assert timings.gke_calls_by_phase(requests, DOCUMENT) == {
        "gke_cluster": {"GET": 1, "POST": 1},
        "helm_tiller": {"GET": 1},
        "outside tasks": {"GET": 1},
    }
