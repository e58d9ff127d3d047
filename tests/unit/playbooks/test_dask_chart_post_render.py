"""The dask_chart role's Helm post-renderer (files/helm-plugins/dask-chart-post-renderer).

Its functions on manifests, its dry run against a fake API, and the whole
program run by the built Helm 4 (as a plugin) and Helm 3 (by its path) on the
sandbox's copy of the published chart.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.sandbox.tools import helm_binary_params, helm_env

REPO_ROOT = Path(__file__).resolve().parents[3]
PLUGINS = REPO_ROOT / "roles/dask_chart/files/helm-plugins"
PLUGIN = PLUGINS / "dask-chart-post-renderer"
CHART = REPO_ROOT / "sandbox/charts/dask"

spec = importlib.util.spec_from_file_location("post_render", PLUGIN / "post_render.py")
post_render = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = post_render  # its dataclass looks its module up there
spec.loader.exec_module(post_render)


def service(name, service_type="ClusterIP", **spec_fields):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": service_type, "ports": [{"port": 8786}], **spec_fields},
    }


def deployment(name, args, command=None):
    container = {"name": name, "image": "ghcr.io/dask/dask:2026.7.1", "args": args}
    if command is not None:
        container["command"] = command
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


RESTRICTED = {
    "type": "LoadBalancer",
    "loadBalancerSourceRanges": ["10.0.0.0/8"],
    "annotations": {"networking.gke.io/load-balancer-type": "Internal"},
    "loadBalancerIP": "203.0.113.10",
}


# ---- exposure ------------------------------------------------------------------------


def test_a_named_service_gets_exactly_the_roles_exposure():
    scheduler = service("dask-scheduler")
    scheduler["metadata"]["annotations"] = {"example.com/team": "data"}
    post_render.apply_exposure([scheduler], {"dask-scheduler": RESTRICTED})
    assert scheduler["spec"]["type"] == "LoadBalancer"
    assert scheduler["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert scheduler["spec"]["loadBalancerIP"] == "203.0.113.10"
    assert scheduler["metadata"]["annotations"] == {
        "example.com/team": "data",
        "networking.gke.io/load-balancer-type": "Internal",
    }


def test_going_back_to_cluster_ip_drops_every_load_balancer_field():
    chart_rendered = service(
        "dask-scheduler", "LoadBalancer", loadBalancerIP="203.0.113.10", loadBalancerClass="x/y"
    )
    post_render.apply_exposure([chart_rendered], {"dask-scheduler": {"type": "ClusterIP"}})
    assert chart_rendered["spec"] == {"type": "ClusterIP", "ports": [{"port": 8786}]}
    assert "annotations" not in chart_rendered["metadata"]


@pytest.mark.parametrize(
    "open_service",
    [
        service("dask-scheduler", "LoadBalancer"),
        service("dask-scheduler", "LoadBalancer", loadBalancerSourceRanges=[]),
        service("dask-extra", "NodePort"),
    ],
)
def test_a_service_left_open_fails_the_render(open_service):
    with pytest.raises(post_render.RenderError, match="open to every address"):
        post_render.apply_exposure([open_service], {})


def test_a_service_the_role_does_not_name_keeps_a_safe_type():
    other = service("dask-metrics", "ClusterIP")
    post_render.apply_exposure([other], {"dask-scheduler": RESTRICTED})
    assert other == service("dask-metrics", "ClusterIP")


# ---- commands and Jupyter --------------------------------------------------------------

REWRITE = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}


def test_legacy_commands_become_dask_cli_subcommands():
    scheduler = deployment("dask-scheduler", ["dask-scheduler", "--port=8786"])
    worker = deployment("dask-worker", ["dask-worker", "dask-scheduler:8786", "--nthreads", "2"])
    post_render.rewrite_commands([scheduler, worker], REWRITE)
    scheduler_args = scheduler["spec"]["template"]["spec"]["containers"][0]["args"]
    worker_args = worker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert scheduler_args == ["dask", "scheduler", "--port=8786"]
    assert worker_args == ["dask", "worker", "dask-scheduler:8786", "--nthreads", "2"]


def test_other_commands_and_an_empty_rewrite_are_left_alone():
    cuda = deployment("dask-worker", ["dask-cuda-worker", "dask-scheduler:8786"])
    kept = deployment("dask-scheduler", ["dask-scheduler", "--port=8786"])
    post_render.rewrite_commands([cuda], REWRITE)
    post_render.rewrite_commands([kept], {})
    assert cuda["spec"]["template"]["spec"]["containers"][0]["args"][0] == "dask-cuda-worker"
    assert kept["spec"]["template"]["spec"]["containers"][0]["args"][0] == "dask-scheduler"


def test_a_command_field_is_rewritten_too():
    custom = deployment("dask-worker", ["--nthreads", "1"], command=["dask-worker", "tcp://s:8786"])
    post_render.rewrite_commands([custom], REWRITE)
    container = custom["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dask", "worker", "tcp://s:8786"]
    assert container["args"] == ["--nthreads", "1"]


def test_the_jupyter_config_is_also_written_under_jupyter_servers_name():
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dask-jupyter-config"},
        "data": {"jupyter_notebook_config.py": "c = get_config()\nc.X = 1\n"},
    }
    post_render.mirror_jupyter_config([config], "dask-jupyter-config")
    assert config["data"] == {
        "jupyter_notebook_config.py": "c = get_config()\nc.X = 1\n",
        "jupyter_server_config.py": "c = get_config()\nc.X = 1\n",
    }


# ---- YAML out --------------------------------------------------------------------------


def test_strings_a_yaml_1_1_reader_would_misread_are_quoted():
    # Go YAML (Helm, the API server) reads unquoted y/n/on as booleans and 1e3 as a float.
    tricky = {"y": "y", "n": "no", "on": "On", "float": "1e3", "octal": "012", "null": "~"}
    text = post_render.dump_documents([{"data": tricky, "plain": "ghcr.io/dask/dask"}])
    for value in tricky.values():
        assert f'"{value}"' in text
    assert "plain: ghcr.io/dask/dask" in text
    assert yaml.safe_load(text)["data"] == tricky


def test_multi_line_strings_stay_readable_blocks():
    text = post_render.dump_documents([{"config": "c = get_config()\nc.X = 'y'\n"}])
    assert text == "config: |\n  c = get_config()\n  c.X = 'y'\n"


# ---- the dry run -----------------------------------------------------------------------


class FakeApi:
    """The API server's dry run: rejects the objects named in `reject`."""

    def __init__(self, namespaces=("dask",), reject=None):
        self.namespaces = set(namespaces)
        self.reject = reject or {}
        self.validated = []

    def namespace_exists(self, name):
        return name in self.namespaces

    def validate(self, body, namespace):
        self.validated.append((body["kind"], body["metadata"]["name"], namespace))
        return self.reject.get(body["metadata"]["name"])


def test_every_object_is_validated_and_every_rejection_named():
    documents = [service("dask-scheduler"), deployment("dask-worker", ["dask-worker"])]
    api = FakeApi(reject={"dask-worker": "spec.replicas: Invalid value: -1"})
    assert post_render.dry_run(documents, "dask", api) == [
        "Deployment dask-worker: spec.replicas: Invalid value: -1"
    ]
    assert api.validated == [
        ("Service", "dask-scheduler", "dask"),
        ("Deployment", "dask-worker", "dask"),
    ]


def test_a_namespace_still_to_be_created_is_validated_in_default():
    api = FakeApi(namespaces=("default",))
    assert post_render.dry_run([service("dask-scheduler")], "new-dask", api) == []
    assert api.validated == [("Service", "dask-scheduler", "default")]


def test_a_rejection_fails_the_render_before_anything_is_printed():
    api = FakeApi(reject={"dask-scheduler": "spec.ports[0].port: Invalid value: 0"})
    settings = post_render.Settings(dry_run={"kubeconfig": "/k", "namespace": "dask"})
    manifests = post_render.dump_documents([service("dask-scheduler")])
    with pytest.raises(post_render.RenderError, match="rejected the release in a dry run"):
        post_render.render(manifests, settings, api_factory=lambda kubeconfig, context: api)


def test_unknown_settings_are_refused():
    with pytest.raises(post_render.RenderError, match=r"unknown keys \['service'\]"):
        post_render.Settings.from_json('{"service": {}}')


# ---- the program, run by the built Helm binaries on the sandbox chart -----------------


@pytest.fixture(params=helm_binary_params())
def helm_render(request, tmp_path):
    """helm_render(settings, values) -> (returncode, manifests by (kind, name), stderr)."""
    helm = request.param

    def run(settings: dict, values: dict | None = None):
        env = {
            **helm_env(tmp_path),
            "DASK_CHART_POST_RENDER": json.dumps(settings),
            "DASK_CHART_POST_RENDERER_PYTHON": sys.executable,
        }
        if helm.name == "helm":
            env["HELM_PLUGINS"] = str(PLUGINS)
            renderer = "dask-chart-post-renderer"
        else:
            renderer = str(PLUGIN / "dask-chart-post-renderer")
        values_file = tmp_path / "values.json"
        values_file.write_text(json.dumps(values or {}))
        argv = [str(helm), "template", "dask", str(CHART), "--namespace", "dask"]
        argv += ["--values", str(values_file), "--post-renderer", renderer]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=60, check=False
        )
        documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return (
            result.returncode,
            {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents},
            result.stderr,
        )

    return run


ROLE_SETTINGS = {
    "services": {"dask-scheduler": RESTRICTED, "dask-jupyter": {"type": "ClusterIP"}},
    "commands": REWRITE,
    "jupyter_config_map": "dask-jupyter-config",
}


def test_helm_installs_what_the_post_renderer_made_of_the_published_chart(helm_render):
    returncode, manifests, stderr = helm_render(ROLE_SETTINGS)
    assert returncode == 0, stderr
    scheduler = manifests[("Service", "dask-scheduler")]
    assert scheduler["spec"]["type"] == "LoadBalancer"
    assert scheduler["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert manifests[("Service", "dask-jupyter")]["spec"]["type"] == "ClusterIP"
    worker = manifests[("Deployment", "dask-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"][:3] == ["dask", "worker", "dask-scheduler:8786"]
    config = manifests[("ConfigMap", "dask-jupyter-config")]["data"]
    assert config["jupyter_server_config.py"] == config["jupyter_notebook_config.py"]


def test_a_load_balancer_from_the_values_alone_is_refused_with_a_report(helm_render, tmp_path):
    report = tmp_path / "report"
    returncode, manifests, _ = helm_render(
        {"report": str(report)}, {"scheduler": {"serviceType": "LoadBalancer"}}
    )
    assert returncode != 0
    assert manifests == {}
    # Helm 4 does not show a plugin's stderr: the report is how the role learns why.
    assert "Service dask-scheduler would be a LoadBalancer open to every address" in (
        report.read_text()
    )
    assert report.stat().st_mode & 0o777 == 0o600
