"""The tutorial's essential steps done directly, as the baseline of the benchmarks.

    python benchmarks/raw_tutorial.py install --cluster dask-bench --nodes 5 --workers 3
    python benchmarks/raw_tutorial.py upgrade --kubeconfig artifacts/dask-bench/kubeconfig \
        --workers 4

The tutorial used gcloud, which cannot reach the sandbox's GKE emulator, so the
cluster is created with the REST calls gcloud makes (POST the cluster with its
node pool, poll the operation every second, read the cluster back). Then the
helm binary of the sandbox (env.json HELM_BIN) adds the repository and installs
with --wait, and the LoadBalancer IPs are polled every 0.5 s (the tutorial's
`kubectl get services` loop). Prints one JSON document: the seconds of every
step and the addresses. Read-only towards anything it did not create.

The tutorial's steps with today's Dask, so that its pods run for real on the
sandbox's node as they would on GKE: the images of the dask_chart role's Dask
version (the node carries no other, and nothing is pulled), whose Dask has no
`dask-scheduler` / `dask-worker` console scripts any more, so the chart's
commands are rewritten as the role decides, by the role's post-renderer; that
post-renderer refuses an open LoadBalancer, so both Services get the sandbox's
source range (127.0.0.0/8, where it hands out addresses). No readiness probes,
no dry run, no Jupyter login: what the role adds on top is what is measured.

`upgrade` changes one value of the release deploy.yml installed, with the same
Helm call as the role: the role's post-renderer and the settings the role
recorded in the release values (`daskGke.postRender`), read with `helm get
values` inside the timed step (a plain `helm upgrade` would roll the pods back
to the chart's commands, which crash).
"""

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks.sandbox_api import REPO_ROOT, BenchError, Gke, load_env
from sandbox.images.config import default_dask_version

OPERATION_POLL = 1.0  # seconds, as gcloud and the google.cloud modules poll
LB_POLL = 0.5  # seconds between two reads of the Services
SERVICES = ("scheduler", "jupyter")
# The dask_chart role's Helm 4 post-renderer plugin (found through HELM_PLUGINS).
PLUGINS_DIR = REPO_ROOT / "roles" / "dask_chart" / "files" / "helm-plugins"
POST_RENDERER = "dask-chart-post-renderer"
# The post-renderer's environment: its settings, its Python, and where Helm 4 finds it.
POST_RENDER_ENV = ("DASK_CHART_POST_RENDER", "DASK_CHART_POST_RENDERER_PYTHON", "HELM_PLUGINS")
# Where the role decides which chart commands a Dask version needs rewritten.
ROLE_FILTERS = REPO_ROOT / "roles" / "dask_chart" / "filter_plugins" / "dask_chart.py"
SANDBOX_SOURCE_RANGE = "127.0.0.0/8"  # the sandbox's load-balancer addresses


def helm_env(env: dict[str, str]) -> dict[str, str]:
    """The caller's environment with the sandbox's Helm home directories and, when
    `env` has them, the post-renderer's settings."""
    names = ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME")
    post_render = {name: env[name] for name in POST_RENDER_ENV if name in env}
    return {**os.environ, **{name: env[name] for name in names}, **post_render}


def run_helm(env: dict[str, str], args: list[str], timeout: float) -> str:
    """Run the sandbox's helm; its stdout."""
    argv = [env["HELM_BIN"], *args]
    result = subprocess.run(
        argv, env=helm_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[:3])} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def post_renderer(settings: dict) -> tuple[list[str], dict[str, str]]:
    """Helm options and environment that run the role's post-renderer with `settings`.

    The environment is meant to be merged into the sandbox's (see helm_env).
    """
    environment = {
        "DASK_CHART_POST_RENDER": json.dumps(settings),
        "DASK_CHART_POST_RENDERER_PYTHON": sys.executable,
        "HELM_PLUGINS": str(PLUGINS_DIR),
    }
    return ["--post-renderer", POST_RENDERER], environment


def recorded_post_render(
    values: dict, kubeconfig: Path, namespace: str
) -> tuple[list[str], dict[str, str]]:
    """The post-renderer as the role ran it on this release, its dry run included.

    `values` are the release's values (`helm get values -o json`); a release without
    the role's recorded settings gets no post-renderer.
    """
    settings = (values.get("daskGke") or {}).get("postRender")
    if not settings:
        return [], {}
    dry_run = {"kubeconfig": str(kubeconfig), "namespace": namespace}
    return post_renderer({**settings, "dry_run": dry_run})


def role_command_rewrite(dask_version: str) -> dict:
    """The chart commands the dask_chart role rewrites for dask_version (its own filter)."""
    spec = importlib.util.spec_from_file_location("dask_chart_filters", ROLE_FILTERS)
    filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters)
    return filters.command_rewrite(dask_version)


def tutorial_post_render(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The least the tutorial needs today: the commands, and ranges on both LoadBalancers."""
    exposure = {"type": "LoadBalancer", "loadBalancerSourceRanges": [args.source_range]}
    return post_renderer(
        {
            "commands": role_command_rewrite(args.dask_version),
            "services": {name: exposure for name in service_names(args.release)},
        }
    )


def kubeconfig_text(cluster: dict, token: str) -> str:
    """A kubeconfig for the cluster with the bearer token (gcloud get-credentials, token form)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "raw",
                    "cluster": {
                        "server": f"https://{cluster['endpoint']}",
                        "certificate-authority-data": cluster["masterAuth"]["clusterCaCertificate"],
                    },
                }
            ],
            "users": [{"name": "raw", "user": {"token": token}}],
            "contexts": [{"name": "raw", "context": {"cluster": "raw", "user": "raw"}}],
            "current-context": "raw",
        }
    )


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def wait_for_lb_ips(
    kubeconfig: Path, namespace: str, names: list[str], timeout: float
) -> dict[str, str]:
    """Poll the Services until each has an ingress IP; {name: ip}."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    deadline = time.monotonic() + timeout
    addresses: dict[str, str] = {}
    while True:
        for name in names:
            if name not in addresses:
                ingress = core.read_namespaced_service(name, namespace).status.load_balancer.ingress
                if ingress and ingress[0].ip:
                    addresses[name] = ingress[0].ip
        if len(addresses) == len(names):
            return addresses
        if time.monotonic() > deadline:
            missing = sorted(set(names) - set(addresses))
            raise BenchError(f"no LoadBalancer IP for {missing} after {timeout:.0f} s")
        time.sleep(LB_POLL)


class Steps:
    """Times consecutive steps: `with steps.step("name"): ...`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, name: str):
        start = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - start, 3)

    def result(self, **extra) -> dict:
        return {"phases": self.seconds, "total": round(time.monotonic() - self.started, 3), **extra}


def service_names(release: str) -> list[str]:
    # The chart names resources <release> when the release name contains "dask".
    fullname = release if "dask" in release else f"{release}-dask"
    return [f"{fullname}-{service}" for service in SERVICES]


def helm_wait_and_lb_ips(
    steps: Steps,
    env: dict[str, str],
    args: argparse.Namespace,
    command: str,
    kubeconfig: Path,
    *options: str,
) -> dict[str, str]:
    """`helm <command> --wait` of the release with `options`, then the LoadBalancer IPs."""
    with steps.step(f"helm {command} --wait"):
        run_helm(
            env,
            [
                command,
                args.release,
                f"{args.repo_name}/dask",
                "--version",
                args.chart_version,
                "--namespace",
                args.namespace,
                "--kubeconfig",
                str(kubeconfig),
                "--wait",
                "--timeout",
                f"{int(args.timeout)}s",
                *options,
            ],
            args.timeout + 30,
        )
    with steps.step("LoadBalancer IPs"):
        return wait_for_lb_ips(
            kubeconfig, args.namespace, service_names(args.release), args.timeout
        )


def install(args: argparse.Namespace, env: dict[str, str]) -> dict:
    gke = Gke(env, args.location)
    steps = Steps()
    workdir = Path(tempfile.mkdtemp(prefix="dask-gke-raw-"))  # 0700: holds the token
    try:
        with steps.step("create cluster + node pool"):
            pool = {
                "name": args.node_pool,
                "initialNodeCount": args.nodes,
                "config": {"machineType": args.machine_type, "diskSizeGb": 100},
            }
            gke.wait_operation(gke.create_cluster(args.cluster, pool), args.timeout, OPERATION_POLL)
            cluster = gke.cluster(args.cluster)
            if cluster is None or cluster.get("status") != "RUNNING":
                raise BenchError(
                    f"cluster {args.cluster} is not RUNNING after its create: "
                    f"{None if cluster is None else cluster.get('status')}"
                )
        with steps.step("kubeconfig"):
            kubeconfig = workdir / "kubeconfig"
            write_private(kubeconfig, kubeconfig_text(cluster, env["GCP_ACCESS_TOKEN"]))
        with steps.step("helm repo add + update"):
            run_helm(
                env,
                ["repo", "add", args.repo_name, env["SANDBOX_CHART_REPO_URL"], "--force-update"],
                args.timeout,
            )
            run_helm(env, ["repo", "update", args.repo_name], args.timeout)
        post_render_options, post_render_env = tutorial_post_render(args)
        images = [
            f"{component}.image.tag={args.dask_version}"
            for component in ("scheduler", "worker", "jupyter")
        ]
        addresses = helm_wait_and_lb_ips(
            steps,
            {**env, **post_render_env},
            args,
            "install",
            kubeconfig,
            "--create-namespace",
            "--set",
            "scheduler.serviceType=LoadBalancer",
            "--set",
            "jupyter.serviceType=LoadBalancer",
            "--set",
            f"worker.replicas={args.workers}",
            "--set",
            ",".join(images),
            *post_render_options,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return steps.result(addresses=addresses)


def upgrade(args: argparse.Namespace, env: dict[str, str]) -> dict:
    """helm upgrade --wait with one changed value, then the LoadBalancer IPs."""
    steps = Steps()
    with steps.step("helm get values"):
        values = json.loads(
            run_helm(
                env,
                [
                    "get",
                    "values",
                    args.release,
                    "--namespace",
                    args.namespace,
                    "--kubeconfig",
                    str(args.kubeconfig),
                    "--output",
                    "json",
                ],
                args.timeout,
            )
            or "{}"
        )
    post_render_options, post_render_env = recorded_post_render(
        values, args.kubeconfig, args.namespace
    )
    addresses = helm_wait_and_lb_ips(
        steps,
        {**env, **post_render_env},
        args,
        "upgrade",
        args.kubeconfig,
        "--reuse-values",
        "--set",
        f"worker.replicas={args.workers}",
        *post_render_options,
    )
    return steps.result(addresses=addresses)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "upgrade"])
    parser.add_argument("--cluster", default="dask-bench")
    parser.add_argument("--location", default="us-central1-a")
    parser.add_argument("--node-pool", default="dask-pool")
    parser.add_argument("--machine-type", default="n1-standard-1")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--release", default="dask")
    parser.add_argument("--namespace", default="dask")
    parser.add_argument("--repo-name", default="dask")
    parser.add_argument("--chart-version", default="2024.1.1")
    parser.add_argument(
        "--dask-version",
        default=default_dask_version(),
        help="install: the images' Dask version (default: the dask_chart role's)",
    )
    parser.add_argument(
        "--source-range",
        default=SANDBOX_SOURCE_RANGE,
        help="install: the LoadBalancers' source range",
    )
    parser.add_argument("--kubeconfig", type=Path, help="upgrade: kubeconfig of the cluster")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds allowed to every wait (operation, helm, LoadBalancer)",
    )
    args = parser.parse_args(argv)
    if args.command == "upgrade" and args.kubeconfig is None:
        parser.error("upgrade needs --kubeconfig")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        env = load_env()
        result = install(args, env) if args.command == "install" else upgrade(args, env)
    except (BenchError, subprocess.TimeoutExpired) as error:
        print(f"raw_tutorial: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
