"""The sandbox dask chart, rendered with the built helm binaries (`helm template`).

Checks the interface the dask_chart role relies on: resource names, ports,
env propagation and the Jupyter password config (dask/helm-chart#512).
"""

import json
from pathlib import Path

import pytest
import yaml

from tests.unit.sandbox.commands import run
from tests.unit.sandbox.tools import helm_binary_params, helm_env

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "sandbox" / "charts" / "dask"


@pytest.fixture(params=helm_binary_params())
def render(request, tmp_path):
    """render(release, values) -> {(kind, name): manifest} from `helm template`."""
    helm = request.param
    env = helm_env(tmp_path)

    def _render(release: str = "dask", values: dict | None = None) -> dict:
        values_file = tmp_path / "values.json"
        values_file.write_text(json.dumps(values or {}))
        result = run(
            [helm, "template", release, CHART, "--namespace", "dask", "--values", values_file],
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}

    return _render


def _container(manifests: dict, deployment: str) -> dict:
    containers = manifests[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: dict) -> dict:
    return {item["name"]: item.get("value") for item in container.get("env") or []}


def test_default_release_has_the_official_resource_names(render):
    manifests = render("dask")
    assert set(manifests) == {
        ("Deployment", "dask-scheduler"),
        ("Deployment", "dask-worker"),
        ("Deployment", "dask-jupyter"),
        ("Service", "dask-scheduler"),
        ("Service", "dask-jupyter"),
        ("ConfigMap", "dask-jupyter-config"),
        ("ServiceAccount", "dask-jupyter"),
        ("Role", "dask-jupyter"),
        ("RoleBinding", "dask-jupyter"),
    }


@pytest.mark.parametrize(
    ("release", "values", "prefix"),
    [
        ("dask", {}, "dask"),
        ("my-dask-release", {}, "my-dask-release"),
        ("prod", {}, "prod-dask"),
        ("prod", {"fullnameOverride": "analytics"}, "analytics"),
    ],
)
def test_fullname_follows_the_official_rule(render, release, values, prefix):
    manifests = render(release, values)
    assert ("Service", f"{prefix}-scheduler") in manifests
    assert ("Service", f"{prefix}-jupyter") in manifests
    assert ("Deployment", f"{prefix}-worker") in manifests


def test_scheduler_service_carries_comm_and_dashboard_ports(render):
    service = render("dask")[("Service", "dask-scheduler")]
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["spec"]["ports"]}
    assert ports == {"dask-scheduler": (8786, 8786), "dask-webui": (80, 8787)}
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {
        "app": "dask",
        "release": "dask",
        "component": "scheduler",
    }


def test_jupyter_service_maps_80_to_8888(render):
    service = render("dask")[("Service", "dask-jupyter")]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, 8888)]
    assert service["spec"]["selector"]["component"] == "jupyter"


def test_load_balancer_settings_reach_the_services(render):
    manifests = render(
        "dask",
        {
            "scheduler": {
                "serviceType": "LoadBalancer",
                "loadBalancerIP": "127.0.9.9",
                "serviceAnnotations": {"example.com/team": "data"},
            },
            "jupyter": {"serviceType": "LoadBalancer"},
            "webUI": {"servicePort": 8080},
        },
    )
    scheduler = manifests[("Service", "dask-scheduler")]
    assert scheduler["spec"]["type"] == "LoadBalancer"
    assert scheduler["spec"]["loadBalancerIP"] == "127.0.9.9"
    assert scheduler["metadata"]["annotations"] == {"example.com/team": "data"}
    assert (8080, 8787) in [(p["port"], p["targetPort"]) for p in scheduler["spec"]["ports"]]
    assert manifests[("Service", "dask-jupyter")]["spec"]["type"] == "LoadBalancer"


def test_source_ranges_are_not_part_of_the_interface(render):
    # Upstream 2024.1.1 has no loadBalancerSourceRanges value: the role must patch
    # the Services itself, so the chart must ignore the key like upstream does.
    manifests = render(
        "dask",
        {
            "scheduler": {
                "serviceType": "LoadBalancer",
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
            },
            "jupyter": {"serviceType": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]},
        },
    )
    for name in ("dask-scheduler", "dask-jupyter"):
        assert "loadBalancerSourceRanges" not in manifests[("Service", name)]["spec"]


def test_env_reaches_workers_and_jupyter(render):
    pip = {"name": "EXTRA_PIP_PACKAGES", "value": "s3fs dask-ml --upgrade"}
    manifests = render(
        "dask",
        {
            "worker": {"env": [pip]},
            "jupyter": {"env": [pip]},
            "scheduler": {"env": [{"name": "DASK_DISTRIBUTED__LOGGING", "value": "info"}]},
            "additional_worker_groups": [{"name": "highmem", "replicas": 1}],
        },
    )
    assert _env(_container(manifests, "dask-worker")) == {"EXTRA_PIP_PACKAGES": pip["value"]}
    assert _env(_container(manifests, "dask-worker-highmem")) == {
        "EXTRA_PIP_PACKAGES": pip["value"]
    }
    jupyter_env = _container(manifests, "dask-jupyter")["env"]
    assert jupyter_env[0] == {"name": "DASK_SCHEDULER_ADDRESS", "value": "dask-scheduler:8786"}
    assert jupyter_env[1:] == [pip]
    assert _env(_container(manifests, "dask-scheduler")) == {"DASK_DISTRIBUTED__LOGGING": "info"}


def test_workers_point_at_the_scheduler_service_and_size_from_limits(render):
    manifests = render(
        "dask", {"worker": {"replicas": 5, "resources": {"limits": {"cpu": 2, "memory": "6G"}}}}
    )
    worker = manifests[("Deployment", "dask-worker")]
    args = _container(manifests, "dask-worker")["args"]
    assert worker["spec"]["replicas"] == 5
    assert args[:2] == ["dask-worker", "dask-scheduler:8786"]
    assert args[args.index("--nthreads") + 1] == "2"
    assert args[args.index("--memory-limit") + 1] == "6G"


def test_images_default_to_upstream_2024_1_0(render):
    manifests = render("dask")
    assert _container(manifests, "dask-scheduler")["image"] == "ghcr.io/dask/dask:2024.1.0"
    assert _container(manifests, "dask-worker")["image"] == "ghcr.io/dask/dask:2024.1.0"
    assert _container(manifests, "dask-jupyter")["image"] == "ghcr.io/dask/dask-notebook:2024.1.0"


def test_password_goes_where_upstream_puts_it(render):
    password_hash = "sha1:0123456789ab:" + "f" * 40
    manifests = render("dask", {"jupyter": {"password": password_hash}})
    config = manifests[("ConfigMap", "dask-jupyter-config")]["data"]
    assert list(config) == ["jupyter_notebook_config.py"]
    assert f"c.NotebookApp.password = '{password_hash}'" in config["jupyter_notebook_config.py"]

    pod = manifests[("Deployment", "dask-jupyter")]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == "dask-jupyter-config"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == "/usr/local/etc/jupyter"


def test_jupyter_extra_config_is_appended(render):
    manifests = render("dask", {"jupyter": {"extraConfig": "c.ServerApp.port = 8888"}})
    config = manifests[("ConfigMap", "dask-jupyter-config")]["data"]["jupyter_notebook_config.py"]
    assert config.index("c.NotebookApp.password") < config.index("c.ServerApp.port = 8888")


def test_jupyter_can_be_disabled(render):
    manifests = render("dask", {"jupyter": {"enabled": False}})
    assert not [key for key in manifests if "jupyter" in key[1]]
    assert ("Service", "dask-scheduler") in manifests


def test_jupyter_rbac_can_be_disabled(render):
    manifests = render("dask", {"jupyter": {"rbac": False}})
    assert ("ServiceAccount", "dask-jupyter") not in manifests
    assert ("Deployment", "dask-jupyter") in manifests


def test_chart_metadata_matches_the_official_release():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["name"], chart["version"], chart["appVersion"]) == (
        "dask",
        "2024.1.1",
        "2024.1.0",
    )
