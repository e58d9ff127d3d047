"""Pure helpers of benchmarks/run.py, raw_tutorial.py and ansible_run.py."""

import argparse
import importlib.util
import json
import os
import sys
import time

import pytest
import yaml
from kubernetes import config

from benchmarks import ansible_run, plots, raw_tutorial, run


def test_parse_points():
    assert run.parse_points("10:10, 500:1000,") == [(10, 10), (500, 1000)]
    with pytest.raises(argparse.ArgumentTypeError, match="'500x1000'"):
        run.parse_points("500x1000")


def test_quick_and_only_options():
    args = run.parse_args(["--quick", "--only", "deploy,scale"])
    assert (args.runs, args.scale_runs, args.scale_points) == (1, 1, [(10, 10)])
    assert args.only == ["deploy", "scale"]
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "deploy,warp"])


def point(nodes, workers, reads):
    return {"nodes": nodes, "workers": workers, "wait_reads": {"median": reads}}


def test_wait_calls_constant_within_the_allowed_jitter():
    verdict = run.wait_calls_verdict(
        [point(500, 10, 20), point(500, 100, 22), point(500, 1000, 28), point(10, 10, 18)]
    )
    assert verdict["met"] is True
    assert verdict["detail"] == "500 nodes: 10 workers 20, 100 workers 22, 1000 workers 28"


def test_wait_calls_growing_with_workers_miss_the_target():
    verdict = run.wait_calls_verdict([point(500, 10, 20), point(500, 1000, 400)])
    assert verdict["met"] is False


def test_wait_calls_need_two_worker_counts():
    assert run.wait_calls_verdict([point(10, 10, 5), point(100, 100, 6)])["met"] is None


def test_phases_median_over_successful_runs_in_run_order():
    records = [
        {"ok": True, "phases": {"start-up": 2.0, "gke_cluster": 30.0, "dask_chart": 10.0}},
        {"ok": True, "phases": {"start-up": 4.0, "gke_cluster": 50.0, "dask_chart": 14.0}},
        {"ok": False, "phases": {"start-up": 99.0}},
        {"ok": True, "phases": {"start-up": 3.0, "gke_cluster": 40.0, "dask_chart": 12.0}},
    ]
    assert run.phases_median(records) == {"start-up": 3.0, "gke_cluster": 40.0, "dask_chart": 12.0}


def test_raw_kubeconfig_is_usable_by_the_kubernetes_client():
    cluster = {"endpoint": "127.0.0.1:32001", "masterAuth": {"clusterCaCertificate": "Q0EK"}}
    document = yaml.safe_load(raw_tutorial.kubeconfig_text(cluster, "tok"))
    api = config.new_client_from_config_dict(document)
    assert api.configuration.host == "https://127.0.0.1:32001"
    assert api.configuration.api_key["BearerToken"] == "Bearer tok"


def test_raw_service_names_follow_the_chart():
    assert raw_tutorial.service_names("dask") == ["dask-scheduler", "dask-jupyter"]
    assert raw_tutorial.service_names("prod") == ["prod-dask-scheduler", "prod-dask-jupyter"]


def test_raw_upgrade_needs_a_kubeconfig():
    with pytest.raises(SystemExit):
        raw_tutorial.parse_args(["upgrade", "--workers", "4"])


def test_module_result_from_the_json_callback_output():
    document = {
        "plays": [{"tasks": [{"hosts": {"localhost": {"elapsed": 1.2, "changed": False}}}]}]
    }
    output = "[WARNING]: something\n" + json.dumps(document, indent=4) + "\n"
    assert ansible_run.module_result(output) == {"elapsed": 1.2, "changed": False}


def test_plots_are_small_pngs(tmp_path):
    deploy = {
        "deploy": {"phases_median": {"start-up": 3.0, "gke_cluster": 40.0, "dask_chart": 20.0}},
        "raw": {"phases_median": {"create cluster + node pool": 35.0, "helm install --wait": 10.0}},
        "ratio": {"median_of_ratios": 1.4},
    }
    scale = {
        "points": [
            {
                "nodes": 500,
                "workers": w,
                "wall": {"median": 60.0 + w / 10},
                "peak_rss_mib": {"median": 300.0},
                "wait_reads": {"median": 20},
            }
            for w in (10, 100, 1000)
        ]
    }
    for path in (
        plots.deploy_phases(deploy, tmp_path / "d.png"),
        plots.scale(scale, tmp_path / "s.png"),
    ):
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG")
        assert len(data) < 200_000


def test_cpu_ticks_grow_while_a_process_works():
    pid = str(os.getpid())
    before = run.cpu_ticks(pid)
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU (20 ticks at 100 Hz)
        pass
    assert run.cpu_ticks(pid) > before
    assert run.cpu_ticks("999999999") is None


SANDBOX_HELM_HOMES = ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME")
RECORDED_SETTINGS = {
    "revision": "0123456789ab",
    "services": {"dask-scheduler": {"type": "LoadBalancer"}},
    "commands": {"dask-scheduler": ["dask", "scheduler"]},
    "jupyter_config_map": "dask-jupyter-config",
}


@pytest.mark.parametrize(
    ("release_values", "post_render_options"),
    [
        pytest.param(
            {"daskGke": {"postRender": RECORDED_SETTINGS}},
            ["--post-renderer", "dask-chart-post-renderer"],
            id="release-of-the-role",
        ),
        pytest.param({}, [], id="release-without-recorded-settings"),
    ],
)
def test_raw_upgrade_runs_helm_upgrade_wait_then_polls_the_lb_ips(
    monkeypatch, tmp_path, release_values, post_render_options
):
    helm_calls, lb_waits = [], []

    def fake_helm(env, argv, timeout):
        helm_calls.append((argv, timeout, raw_tutorial.helm_env(env)))
        return json.dumps(release_values) if argv[:2] == ["get", "values"] else ""

    monkeypatch.setattr(raw_tutorial, "run_helm", fake_helm)
    monkeypatch.setattr(
        raw_tutorial, "wait_for_lb_ips", lambda *call: lb_waits.append(call) or {"a": "1.2.3.4"}
    )
    kubeconfig = tmp_path / "kubeconfig"
    args = raw_tutorial.parse_args(["upgrade", "--workers", "4", "--kubeconfig", str(kubeconfig)])
    sandbox = {name: f"/sandbox/{name}" for name in ("HELM_BIN", *SANDBOX_HELM_HOMES)}
    result = raw_tutorial.upgrade(args, sandbox)
    assert list(result["phases"]) == ["helm get values", "helm upgrade --wait", "LoadBalancer IPs"]
    assert result["addresses"] == {"a": "1.2.3.4"}
    [(get_argv, _, get_env), (argv, timeout, upgrade_env)] = helm_calls
    for name in SANDBOX_HELM_HOMES:
        assert get_env[name] == upgrade_env[name] == sandbox[name]
    assert get_argv == [
        "get",
        "values",
        "dask",
        "--namespace",
        "dask",
        "--kubeconfig",
        str(kubeconfig),
        "--output",
        "json",
    ]
    assert argv == [
        "upgrade",
        "dask",
        "dask/dask",
        "--version",
        "2024.1.1",
        "--namespace",
        "dask",
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "--timeout",
        "600s",
        "--reuse-values",
        "--set",
        "worker.replicas=4",
        *post_render_options,
    ]
    assert timeout == 630.0
    assert lb_waits == [(kubeconfig, "dask", ["dask-scheduler", "dask-jupyter"], 600.0)]
    if post_render_options:
        # The role's settings as recorded, plus the dry run the role adds.
        assert json.loads(upgrade_env["DASK_CHART_POST_RENDER"]) == {
            **RECORDED_SETTINGS,
            "dry_run": {"kubeconfig": str(kubeconfig), "namespace": "dask"},
        }
        assert upgrade_env["HELM_PLUGINS"] == str(raw_tutorial.PLUGINS_DIR)
        assert (raw_tutorial.PLUGINS_DIR / "dask-chart-post-renderer" / "plugin.yaml").is_file()
    else:
        assert "DASK_CHART_POST_RENDER" not in upgrade_env


def test_run_record_of_a_failed_run_keeps_no_wall_time():
    failed = ansible_run.AnsibleRun(
        argv=["deploy.yml"],
        returncode=2,
        wall=12.5,
        started=100.0,
        ended=112.5,
        peak_rss_bytes=3 * run.MIB,
        log=run.RUNS_DIR / "t" / "deploy-1.log",
        output_tail="fatal: boom",
    )
    requests = [{"method": "GET"}, {"method": "POST"}, {"method": "GET"}]
    record = run.run_record("deploy-1", failed, requests)
    assert record["ok"] is False
    assert record["wall"] is None
    assert record["peak_rss_mib"] == 3.0
    assert record["log"] == "benchmarks/.runs/t/deploy-1.log"
    assert record["error_tail"] == "fatal: boom"
    assert record["gke_calls"] == {"total": 3, "writes": 1}


def load_post_renderer():
    path = raw_tutorial.PLUGINS_DIR / "dask-chart-post-renderer" / "post_render.py"
    spec = importlib.util.spec_from_file_location("post_render", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_raw_install_runs_the_node_s_dask_behind_restricted_load_balancers():
    args = raw_tutorial.parse_args(["install", "--dask-version", "2026.7.1"])
    options, environment = raw_tutorial.tutorial_post_render(args)
    assert options == ["--post-renderer", "dask-chart-post-renderer"]
    post_render = load_post_renderer()
    settings = post_render.Settings.from_json(environment["DASK_CHART_POST_RENDER"])
    chart_output = yaml.safe_dump_all(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            }
            for name in ("dask-scheduler", "dask-jupyter")
        ]
        + [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "dask-scheduler"},
                "spec": {"template": {"spec": {"containers": [{"args": ["dask-scheduler"]}]}}},
            }
        ]
    )
    services_and_scheduler = list(yaml.safe_load_all(post_render.render(chart_output, settings)))
    for service in services_and_scheduler[:2]:
        assert service["spec"]["loadBalancerSourceRanges"] == ["127.0.0.0/8"]
    # 2026.7.1 has no dask-scheduler console script: the role rewrites the command.
    [container] = services_and_scheduler[2]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["dask", "scheduler"]
