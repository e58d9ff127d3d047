"""helm_release_info: a stand-in `helm` (a real process) answers with what Helm 4 printed for
the sandbox's deployed Dask release (data/: `helm history --max 1` and `helm get values`, the
password hash replaced), or with Helm's own errors; it records every argv it was run with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible_collections.dask_gke.core.plugins.modules import helm_release_info

DATA = Path(__file__).parent / "data"
HISTORY = json.loads((DATA / "helm4_history_dask.json").read_text())
VALUES = json.loads((DATA / "helm4_values_dask.json").read_text())
NOT_FOUND = (1, "", "Error: release: not found\n")
KUBECONFIG = "/home/ops/dask-gke/artifacts/dask/kubeconfig"
ARGS = {"release_name": "dask", "release_namespace": "dask", "kubeconfig": KUBECONFIG}


@pytest.fixture
def helm(tmp_path):
    """make(history=(rc, stdout, stderr), values=(...), sleep=s) writes the stand-in and returns
    its path; .calls() gives the argv of each run."""
    calls = tmp_path / "calls.jsonl"

    def make(history, values=(0, "null", ""), sleep=0):
        script = tmp_path / "helm"
        answers = {"history": list(history), "get": list(values)}
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, sys, time\n"
            f"with open({str(calls)!r}, 'a') as log:\n"
            "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
            f"time.sleep({sleep})\n"
            f"rc, out, err = {answers!r}[sys.argv[1]]\n"
            "sys.stdout.write(out)\n"
            "sys.stderr.write(err)\n"
            "sys.exit(rc)\n"
        )
        script.chmod(0o755)
        return str(script)

    def recorded():
        return [json.loads(line) for line in calls.read_text().splitlines()]

    make.calls = recorded
    return make


def deployed(**changes):
    """The recorded history, its one entry changed."""
    return (0, json.dumps([{**HISTORY[0], **changes}]), "")


def test_a_deployed_release_gives_its_revision_status_chart_and_supplied_values(run_module, helm):
    binary = helm(deployed(), values=(0, json.dumps(VALUES), ""))
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert outcome == "exit", result
    connection = ["--namespace", "dask", "--kubeconfig", KUBECONFIG, "--output", "json"]
    assert helm.calls() == [
        ["history", "dask", "--max", "1", *connection],
        ["get", "values", "dask", "--revision", "1", *connection],
    ]
    assert result["changed"] is False
    assert (result["exists"], result["revision"], result["status"]) == (True, 1, "deployed")
    assert (result["chart"], result["app_version"]) == ("dask-2024.1.1", "2024.1.0")
    assert result["release_values"] == VALUES
    assert result["release_values"]["worker"]["replicas"] == 3
    assert result["commands"][0].startswith(f"{binary} history dask")


def test_the_values_are_read_from_the_latest_revision_whatever_its_status(run_module, helm):
    binary = helm(deployed(revision=7, status="failed"), values=(0, json.dumps(VALUES), ""))
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert outcome == "exit", result
    assert (result["revision"], result["status"]) == (7, "failed")
    assert helm.calls()[1][3:5] == ["--revision", "7"]


def test_a_missing_release_is_absent_not_failed_and_helm_runs_once(run_module, helm):
    binary = helm(NOT_FOUND)
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert outcome == "exit", result
    assert (result["exists"], result["revision"], result["status"]) == (False, 0, "")
    assert (result["chart"], result["release_values"]) == ("", {})
    assert len(helm.calls()) == 1


def test_a_revision_without_values_gives_an_empty_dict(run_module, helm):
    binary = helm(deployed(), values=(0, "null\n", ""))
    _, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert result["release_values"] == {}


def test_an_unreachable_cluster_fails_quoting_helm(run_module, helm):
    error = "Error: Kubernetes cluster unreachable: dial tcp 127.0.0.9:443: i/o timeout\n"
    binary = helm((1, "", error))
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert outcome == "fail"
    assert "failed with exit code 1" in result["msg"]
    assert "Kubernetes cluster unreachable" in result["msg"]


def test_a_history_without_a_revision_fails_quoting_it(run_module, helm):
    binary = helm((0, "[]", ""))
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert outcome == "fail"
    assert "no revision in []" in result["msg"]


def test_output_that_is_not_json_fails(run_module, helm):
    binary = helm(deployed(), values=(0, "jupyter:\n  enabled: true\n", ""))
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": binary})
    assert outcome == "fail"
    assert "get values dask" in result["msg"] and "did not print JSON" in result["msg"]


def test_a_helm_that_hangs_is_stopped_after_timeout(run_module, helm):
    binary = helm(NOT_FOUND, sleep=30)
    outcome, result, _ = run_module(
        helm_release_info.main, {**ARGS, "binary_path": binary, "timeout": 1}
    )
    assert outcome == "fail"
    assert "did not finish within 1 seconds" in result["msg"]


def test_the_context_is_passed_and_the_kubeconfig_left_to_helm_when_unset(run_module, helm):
    binary = helm(NOT_FOUND)
    args = {"release_name": "r", "release_namespace": "n", "context": "gke_p_z_c"}
    run_module(helm_release_info.main, {**args, "binary_path": binary})
    connection = ["--namespace", "n", "--kube-context", "gke_p_z_c", "--output", "json"]
    assert helm.calls() == [["history", "r", "--max", "1", *connection]]


def test_a_binary_path_that_is_not_executable_fails_naming_it(run_module, tmp_path):
    missing = str(tmp_path / "nowhere" / "helm")
    outcome, result, _ = run_module(helm_release_info.main, {**ARGS, "binary_path": missing})
    assert outcome == "fail"
    assert f"binary_path={missing!r} is not an executable file" in result["msg"]
