"""helm_tiller_version: helm is mocked at run_command, the cluster at kubernetes.core's
dynamic client (the request path and the JSON it answers)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import ClassVar

import pytest
from ansible.module_utils import basic
from ansible_collections.dask_gke.core.plugins.module_utils import task_runner
from ansible_collections.dask_gke.core.plugins.modules import helm_tiller_version
from kubernetes.client.exceptions import ApiException

HELM = "/opt/helm/bin/helm"
HELM4 = (
    'version.BuildInfo{Version:"v4.3.1", GitCommit:"", GitTreeState:"", '
    'GoVersion:"go1.26.8", KubeClientVersion:"v1.37"}\n'
)
HELM3 = (
    'version.BuildInfo{Version:"v3.2.1", GitCommit:"fe51cd1e31e6a202cba7dead9552a6d418ded79a", '
    'GitTreeState:"clean", GoVersion:"go1.13.10"}\n'
)
HELM2_17 = (
    'Client: &version.Version{SemVer:"v2.17.0", '
    'GitCommit:"a690bad98af45b015bd3da1a41f6218b1a451dbe", GitTreeState:"clean"}\n'
)
HELM2_16 = (
    'Client: &version.Version{SemVer:"v2.16.0", '
    'GitCommit:"e13bc94621d4ef666270cfbe734aaabf342a49bb", GitTreeState:"clean"}\n'
)
SERVER_2_14 = (
    'Server: &version.Version{SemVer:"v2.14.3", '
    'GitCommit:"0e7f3b6637f7af8fcfddb3d2941fcc7cbebb0085", GitTreeState:"clean"}\n'
)


def tiller_deployment(image="ghcr.io/helm/tiller:v2.17.0", ready_replicas=1):
    """The tiller-deploy Deployment as the API sends it (only the fields that matter)."""
    labels = {"app": "helm", "name": "tiller"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tiller-deploy", "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "tiller", "image": image}]},
            },
        },
        "status": {"replicas": 1, "readyReplicas": ready_replicas},
    }


class FakeResponse:
    def __init__(self, body):
        self.data = json.dumps(body).encode()


class FakeCluster:
    """Stands in for kubernetes.core's dynamic client: one Deployment, or an API error."""

    def __init__(self, deployment=None, error=None):
        self.deployment = deployment
        self.error = error
        self.reads = []

    def request(self, method, path, serialize=True, **params):
        assert (method, serialize) == ("get", False)
        self.reads.append(path)
        if self.error:
            raise self.error
        if self.deployment is None:
            raise ApiException(status=404, reason="Not Found")
        return FakeResponse(self.deployment)


@pytest.fixture
def helm(monkeypatch):
    """Mock `helm version`: set .outputs to [(rc, stdout, stderr)], read .calls."""

    class Helm:
        outputs: ClassVar[list] = [(0, HELM4, "")]
        calls: ClassVar[list] = []

    def run_command(self, argv, **kwargs):
        Helm.calls.append((argv, kwargs))
        return Helm.outputs[len(Helm.calls) - 1]

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(task_runner.os.path, "isfile", lambda path: path == HELM)
    monkeypatch.setattr(task_runner.os, "access", lambda path, mode: path == HELM)
    return Helm


@pytest.fixture
def cluster(monkeypatch):
    def install(**kwargs):
        fake = FakeCluster(**kwargs)
        monkeypatch.setattr(helm_tiller_version, "dynamic_client", lambda module: fake)
        return fake

    return install


def test_helm4_default_runs_helm_version_once_and_does_not_read_the_cluster(
    run_module, helm, cluster
):
    fake = cluster(deployment=tiller_deployment())
    outcome, result, warnings = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "min_version": "3.8.0"}
    )
    assert outcome == "exit"
    assert [call[0] for call in helm.calls] == [[HELM, "version"]]
    assert helm.calls[0][1]["environ_update"] == {"TILLER_NAMESPACE": "kube-system"}
    assert fake.reads == []
    assert result["changed"] is False
    assert result["client_version"] == "4.3.1"
    assert result["client_major"] == 4
    assert result["kube_client_version"] == "v1.37"
    assert result["server_version"] is None
    assert result["tiller_present"] is None
    assert result["compatible"] is True
    assert result["reasons"] == []
    assert result["command"] == f"{HELM} version"
    assert result["stdout"] == HELM4
    assert warnings == []


def test_check_mode_gives_the_same_read_only_result(run_module, helm, cluster):
    cluster()
    helm.outputs = [(0, HELM4, "")] * 2
    normal = run_module(helm_tiller_version.main, {"binary_path": HELM, "tiller": "absent"})
    checked = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "tiller": "absent"}, check_mode=True
    )
    assert normal[0] == checked[0] == "exit"
    assert normal[1] == checked[1]
    assert checked[1]["changed"] is False
    assert checked[1]["tiller_present"] is False
    assert helm.calls[0][0] == helm.calls[1][0]
    assert helm.calls[0][1]["environ_update"] == helm.calls[1][1]["environ_update"]


def test_client_below_minimum_fails_with_reason(run_module, helm, cluster):
    helm.outputs = [(0, HELM3, "")]
    outcome, result, _ = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "min_version": "v4.0.0"}
    )
    assert outcome == "fail"
    assert result["compatible"] is False
    assert result["client_version"] == "3.2.1"
    assert "older than min_version 4.0.0" in result["msg"]
    assert result["reasons"] == [result["msg"]]


def test_invalid_min_version_names_the_option(run_module, helm, cluster):
    outcome, result, _ = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "min_version": "latest"}
    )
    assert outcome == "fail"
    assert "min_version='latest'" in result["msg"]
    assert helm.calls == []


def test_missing_binary_names_the_option(run_module, helm, cluster):
    outcome, result, _ = run_module(helm_tiller_version.main, {"binary_path": "/nowhere/helm"})
    assert outcome == "fail"
    assert "binary_path='/nowhere/helm'" in result["msg"]
    assert helm.calls == []


@pytest.mark.parametrize("binary_path", [None, "helm"], ids=["unset", "a-name"])
def test_helm_found_on_path(run_module, helm, cluster, monkeypatch, binary_path):
    searched = []

    def get_bin_path(name):
        searched.append(name)
        return HELM

    monkeypatch.setattr(task_runner, "_get_bin_path", get_bin_path)
    args = {} if binary_path is None else {"binary_path": binary_path}
    outcome, result, _ = run_module(helm_tiller_version.main, args)
    assert outcome == "exit", result.get("msg")
    assert searched == ["helm"]
    assert helm.calls[0][0] == [HELM, "version"]
    assert result["binary_path"] == HELM


def test_connection_options_reach_helm_as_environment(run_module, helm, cluster):
    run_module(
        helm_tiller_version.main,
        {
            "binary_path": HELM,
            "kubeconfig": "/home/ops/.kube/dask.yaml",
            "context": "kwok-dask",
            "tiller_namespace": "tiller-world",
        },
    )
    assert helm.calls[0][1]["environ_update"] == {
        "TILLER_NAMESPACE": "tiller-world",
        "KUBECONFIG": "/home/ops/.kube/dask.yaml",
        "HELM_KUBECONTEXT": "kwok-dask",
    }


def test_unknown_output_fails_quoting_it_with_rc_stdout_stderr(run_module, helm, cluster):
    helm.outputs = [(0, "Helm is a tool for managing Kubernetes charts.\n", "")]
    outcome, result, _ = run_module(helm_tiller_version.main, {"binary_path": HELM})
    assert outcome == "fail"
    assert "Helm is a tool for managing Kubernetes charts." in result["msg"]
    assert result["rc"] == 0
    assert result["command"] == f"{HELM} version"
    assert "stdout" in result
    assert "stderr" in result


def test_helm3_nonzero_exit_fails(run_module, helm, cluster):
    helm.outputs = [(1, HELM3, "Error: some failure\n")]
    outcome, result, _ = run_module(helm_tiller_version.main, {"binary_path": HELM})
    assert outcome == "fail"
    assert "exit code 1" in result["msg"]
    assert result["stderr"] == "Error: some failure\n"


def test_helm2_with_matching_ready_tiller(run_module, helm, cluster):
    helm.outputs = [(0, HELM2_17 + HELM2_17.replace("Client:", "Server:"), "")]
    fake = cluster(deployment=tiller_deployment("ghcr.io/helm/tiller:v2.17.0"))
    outcome, result, _ = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "tiller": "present"}
    )
    assert outcome == "exit"
    assert fake.reads == ["/apis/apps/v1/namespaces/kube-system/deployments/tiller-deploy"]
    assert result["client_major"] == 2
    assert result["server_version"] == "2.17.0"
    assert result["tiller_present"] is True
    assert result["tiller_ready"] is True
    assert result["tiller_image"] == "ghcr.io/helm/tiller:v2.17.0"
    assert result["compatible"] is True


def test_helm2_mismatch_from_server_line_without_reading_the_cluster(run_module, helm, cluster):
    helm.outputs = [(0, HELM2_16 + SERVER_2_14, "")]
    fake = cluster()
    outcome, result, _ = run_module(helm_tiller_version.main, {"binary_path": HELM})
    assert outcome == "fail"
    assert fake.reads == []
    assert result["server_version"] == "2.14.3"
    assert "differ in minor version" in result["msg"]


def test_helm2_without_tiller_is_fine_when_tiller_not_required(run_module, helm, cluster):
    helm.outputs = [(1, HELM2_17, "Error: could not find tiller\n")]
    outcome, result, _ = run_module(helm_tiller_version.main, {"binary_path": HELM})
    assert outcome == "exit"
    assert result["client_version"] == "2.17.0"
    assert result["tiller_error"] == "could not find tiller"
    assert result["server_version"] is None


@pytest.mark.parametrize(
    ("output", "deployment", "expected", "message"),
    [
        pytest.param(
            (0, HELM2_16 + SERVER_2_14, ""),
            tiller_deployment("gcr.io/kubernetes-helm/tiller:v2.14.3"),
            {"compatible": False},
            "2.16.0 and Tiller 2.14.3 differ in minor version",
            id="helm2-client-and-tiller-image-minor-mismatch",
        ),
        pytest.param(
            (1, HELM2_17, "Error: could not find tiller\n"),
            None,
            {"tiller_present": False},
            "Deployment kube-system/tiller-deploy does not exist",
            id="tiller-missing",
        ),
        pytest.param(
            (0, HELM4, ""),
            tiller_deployment(ready_replicas=None),
            {"tiller_present": True, "tiller_ready": False},
            "has no ready replica",
            id="tiller-not-ready",
        ),
    ],
)
def test_required_tiller_that_is_unfit_fails(
    run_module, helm, cluster, *, output, deployment, expected, message
):
    helm.outputs = [output]
    cluster(deployment=deployment)
    outcome, result, _ = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "tiller": "present"}
    )
    assert outcome == "fail"
    for key, value in expected.items():
        assert result[key] is value, key
    assert message in result["msg"]


def test_leftover_tiller_with_helm4_warns(run_module, helm, cluster):
    cluster(deployment=tiller_deployment())
    outcome, result, warnings = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "tiller": "absent"}
    )
    assert outcome == "exit"
    assert result["compatible"] is True
    assert result["tiller_present"] is True
    assert result["server_version"] == "2.17.0"
    assert len(result["reasons"]) == 1
    assert "Tiller found" in result["reasons"][0]
    assert warnings == result["reasons"]


def test_leftover_tiller_fails_when_told_to(run_module, helm, cluster):
    cluster(deployment=tiller_deployment())
    outcome, result, warnings = run_module(
        helm_tiller_version.main,
        {"binary_path": HELM, "tiller": "absent", "fail_on_leftover_tiller": True},
    )
    assert outcome == "fail"
    assert result["compatible"] is False
    assert "unauthenticated cluster-admin endpoint" in result["msg"]
    assert warnings == []


def test_api_error_other_than_404_fails_with_status(run_module, helm, cluster):
    cluster(error=ApiException(status=403, reason="Forbidden"))
    outcome, result, _ = run_module(
        helm_tiller_version.main, {"binary_path": HELM, "tiller": "absent"}
    )
    assert outcome == "fail"
    assert "HTTP 403 Forbidden" in result["msg"]
    assert "tiller_namespace" in result["msg"]


# -- a Helm 2 client for real: the stand-in prints Helm 2's outputs (no Helm 2 builds here) --

HELM2_STANDIN = Path(__file__).resolve().parents[2] / "integration" / "helm2_standin.py"


@pytest.fixture
def helm2(monkeypatch, cluster):
    """Run the module with the Helm 2 stand-in as binary_path; `found` is the Tiller it sees."""

    def run(run_module, found, deployment, **args):
        monkeypatch.setenv("HELM2_STANDIN_TILLER", found)
        fake = cluster(deployment=deployment)
        outcome, result, _ = run_module(
            helm_tiller_version.main, {"binary_path": str(HELM2_STANDIN), **args}
        )
        return outcome, result, fake

    return run


def test_helm2_client_with_its_tiller_reports_both_and_compatible(run_module, helm2):
    outcome, result, fake = helm2(
        run_module, "v2.17.0", tiller_deployment("ghcr.io/helm/tiller:v2.17.0"), tiller="present"
    )
    assert outcome == "exit", result["msg"]
    assert (result["client_version"], result["client_major"]) == ("2.17.0", 2)
    assert result["output_format"] == "helm2"
    assert result["server_version"] == "2.17.0"
    assert (result["tiller_present"], result["tiller_ready"]) == (True, True)
    assert result["compatible"] is True
    assert result["binary_path"] == str(HELM2_STANDIN)
    assert result["stdout"].startswith('Client: &version.Version{SemVer:"v2.17.0"')
    assert fake.reads == ["/apis/apps/v1/namespaces/kube-system/deployments/tiller-deploy"]


def test_helm2_client_with_an_older_tiller_fails_as_helm2_would(run_module, helm2):
    outcome, result, _ = helm2(
        run_module,
        "v2.14.3",
        tiller_deployment("gcr.io/kubernetes-helm/tiller:v2.14.3"),
        tiller="present",
    )
    assert outcome == "fail"
    assert result["compatible"] is False
    assert result["server_version"] == "2.14.3"
    assert "Helm 2 client 2.17.0 and Tiller 2.14.3 differ in minor version" in result["msg"]


def test_helm2_client_without_tiller_reports_helm2_s_error(run_module, helm2):
    outcome, result, _ = helm2(run_module, "absent", None, tiller="present")
    assert outcome == "fail"
    assert result["tiller_error"] == "could not find tiller"
    assert result["tiller_present"] is False
    assert "does not exist" in result["msg"]


def test_helm2_client_with_an_unready_tiller(run_module, helm2):
    outcome, result, _ = helm2(
        run_module, "unready", tiller_deployment(ready_replicas=0), tiller="present"
    )
    assert outcome == "fail"
    assert result["tiller_error"] == "could not find a ready tiller pod"
    assert "has no ready replica" in result["msg"]


def test_a_helm_that_hangs_is_stopped_at_the_timeout(run_module, monkeypatch, tmp_path):
    hanging = tmp_path / "helm"
    hanging.write_text("#!/bin/sh\necho starting\nexec sleep 30\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(helm_tiller_version, "HELM_VERSION_TIMEOUT", 0.5)
    started = time.monotonic()
    outcome, result, _ = run_module(helm_tiller_version.main, {"binary_path": str(hanging)})
    assert time.monotonic() - started < 5
    assert outcome == "fail"
    assert result["msg"] == f"'{hanging} version' did not finish within 0.5 seconds and was stopped"
    assert result["command"] == f"{hanging} version"
    assert result["stdout"] == "starting\n"
