"""Start, stop and inspect the local sandbox.

    python -m sandbox.cli up [--backend kwok|fake]   build tools if needed, start the daemon
    python -m sandbox.cli down                        delete every cluster, stop every process
    python -m sandbox.cli status [--json]             exit 0 when the daemon serves, 3 when not
    python -m sandbox.cli leftovers                   exit 1 listing what a real node left behind

State lives in .sandbox/ (DASK_GKE_SANDBOX_DIR overrides); ports start at 18080
(DASK_GKE_SANDBOX_PORT_BASE overrides). See docs/contracts.md.
"""

import argparse
import http.client
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

from sandbox.emulator.ca import ensure_ca
from sandbox.emulator.daemon import SANDBOX_PROJECT, SERVICE_ACCOUNT_FILE
from sandbox.emulator.server import HOSTS
from sandbox.emulator.tokens import make_service_account_key
from sandbox.node.commands import NodeError
from sandbox.node.processes import alive, read_pid, stop_pid
from sandbox.pypi import host_port
from sandbox.subprocesses import start_logged

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "sandbox" / "tools" / "build.sh"
CHART_SOURCES = REPO_ROOT / "sandbox" / "charts"
DEFAULT_PORT_BASE = 18080
PROJECT = SANDBOX_PROJECT
# The automation's identity: a JSON key the emulator's token endpoint accepts.
SERVICE_ACCOUNT = "dask-gke-automation"
HEALTH_TIMEOUT = 30.0  # seconds for a started daemon to answer /healthz
SHUTDOWN_TIMEOUT = 600.0  # seconds for the daemon to delete every cluster
EXIT_DOWN = 3
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")


class SandboxError(Exception):
    """A failure to report on stderr with exit code 1."""


def sandbox_dir() -> Path:
    return Path(os.environ.get("DASK_GKE_SANDBOX_DIR") or REPO_ROOT / ".sandbox").resolve()


def port_base() -> int:
    return int(os.environ.get("DASK_GKE_SANDBOX_PORT_BASE") or DEFAULT_PORT_BASE)


def admin_url() -> str:
    return f"http://127.0.0.1:{port_base() + 1}"


def info(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


def admin_call(method: str, path: str, timeout: float = 2.0):
    """JSON answer of the admin API, or None when the daemon does not answer (or fails)."""
    connection = http.client.HTTPConnection("127.0.0.1", port_base() + 1, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            info(f"admin {method} {path}: HTTP {response.status} {body.decode(errors='replace')}")
            return None
        return json.loads(body or b"null")
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# ---- processes -----------------------------------------------------------


def stop(pid: int, name: str) -> None:
    """Stop one recorded process; a process that outlives SIGKILL is reported, not fatal."""
    try:
        stop_pid(pid, name)
    except NodeError as error:
        info(str(error))


# ---- up ------------------------------------------------------------------


def tools_bin_dir(build: bool) -> Path:
    """The tools bin dir: last stdout line of build.sh (which builds when asked)."""
    argv = [str(BUILD_SCRIPT)] if build else [str(BUILD_SCRIPT), "--print"]
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SandboxError(f"{' '.join(argv)} failed with exit code {result.returncode}")
    return Path(lines[-1].strip())


def helm_environment(sandbox: Path) -> dict[str, str]:
    helm = sandbox / "helm"
    return {
        "HELM_CONFIG_HOME": str(helm / "config"),
        "HELM_CACHE_HOME": str(helm / "cache"),
        "HELM_DATA_HOME": str(helm / "data"),
    }


def package_charts(sandbox: Path, bin_dir: Path, chart_repo_url: str) -> None:
    charts = sorted(p.parent for p in CHART_SOURCES.glob("*/Chart.yaml"))
    helm = bin_dir / "helm"
    if not charts:
        info(f"warning: no chart under {CHART_SOURCES}; the chart repository stays empty")
        return
    if not os.access(helm, os.X_OK):
        info(f"warning: {helm} missing; charts not packaged")
        return
    env = {**os.environ, **helm_environment(sandbox)}
    target = sandbox / "charts"
    for chart in charts:
        run([str(helm), "package", str(chart), "-d", str(target)], env)
    run([str(helm), "repo", "index", str(target), "--url", chart_repo_url], env)
    info(f"packaged {', '.join(c.name for c in charts)} into {target}")


def run(argv: list[str], env: dict) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(
            f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        )


def environment(sandbox: Path, bin_dir: Path, token: str) -> dict[str, str]:
    base = port_base()
    proxy = f"http://127.0.0.1:{base}"
    return {
        "DASK_GKE_SANDBOX_DIR": str(sandbox),
        "HTTPS_PROXY": proxy,
        "https_proxy": proxy,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "REQUESTS_CA_BUNDLE": str(sandbox / "ca" / "ca.pem"),
        "GCP_AUTH_KIND": "accesstoken",
        "GCP_ACCESS_TOKEN": token,
        "GCP_SERVICE_ACCOUNT_FILE": str(sandbox / SERVICE_ACCOUNT_FILE),
        "GCP_PROJECT": PROJECT,
        "SANDBOX_ADMIN_URL": f"http://127.0.0.1:{base + 1}",
        "SANDBOX_CHART_REPO_URL": f"http://127.0.0.1:{base + 2}",
        "SANDBOX_BIN_DIR": str(bin_dir),
        "HELM_BIN": str(bin_dir / "helm"),
        "HELM3_BIN": str(bin_dir / "helm3"),
        "KUBECTL_BIN": str(bin_dir / "kubectl"),
        **helm_environment(sandbox),
    }


def write_environment(sandbox: Path, env: dict[str, str]) -> None:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines.append(f'export PATH={shlex.quote(env["SANDBOX_BIN_DIR"])}:"$PATH"')
    # Both files hold the access token: owner-only.
    write_private(sandbox / "env", "\n".join(lines) + "\n")
    write_private(sandbox / "env.json", json.dumps(env, indent=2) + "\n")


def ensure_service_account(sandbox: Path) -> Path:
    """The service-account JSON key of the sandbox (0600), made once."""
    path = sandbox / SERVICE_ACCOUNT_FILE
    if not path.exists():
        key = make_service_account_key(PROJECT, SERVICE_ACCOUNT)
        write_private(path, json.dumps(key, indent=2) + "\n")
    return path


def ensure_token(sandbox: Path) -> str:
    path = sandbox / "token"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def dask_versions() -> list[str]:
    """The Dask versions whose images the real nodes carry (built here, before the daemon)."""
    from sandbox import images  # noqa: PLC0415 - only `up` builds images

    return images.sandbox_dask_versions()


def start_daemon(sandbox: Path, bin_dir: Path, backend: str) -> int:
    log_path = sandbox / "logs" / "daemon.log"
    argv = [
        sys.executable,
        "-m",
        "sandbox.emulator.daemon",
        "--sandbox-dir",
        str(sandbox),
        "--bin-dir",
        str(bin_dir),
        "--port-base",
        str(port_base()),
        "--backend",
        backend,
        "--package-index-port",
        str(host_port(port_base())),
    ]
    if backend == "kwok":
        for version in dask_versions():
            argv += ["--dask-version", version]
    # The daemon talks to its KWOK clusters on loopback directly: never through a proxy
    # (a sourced .sandbox/env would otherwise hand it our own CONNECT proxy).
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    with log_path.open("a", encoding="utf-8") as log_file:
        process = start_logged(argv, log_file, cwd=REPO_ROOT, env=env)
    (sandbox / "pids" / "daemon.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        if admin_call("GET", "/healthz") is not None:
            return process.pid
        if process.poll() is not None:
            raise SandboxError(f"the daemon exited with code {process.returncode}; see {log_path}")
        time.sleep(0.2)
    raise SandboxError(
        f"the daemon (pid {process.pid}) did not answer {admin_url()}/healthz within "
        f"{HEALTH_TIMEOUT:.0f} s; see {log_path}"
    )


def start_package_index(sandbox: Path) -> None:
    """The caching PyPI proxy pods install EXTRA_PIP_PACKAGES from (sandbox/pypi)."""
    # Imported here: sandbox.pypi.server imports this module.
    from sandbox.pypi.server import PypiError, start  # noqa: PLC0415

    try:
        pid = start(sandbox, port_base())
    except PypiError as error:
        raise SandboxError(f"package index: {error}") from error
    info(f"package index on 127.0.0.1:{host_port(port_base())} (pid {pid})")


def cmd_up(args) -> int:
    sandbox = sandbox_dir()
    for sub in ("pids", "logs", "charts", "kwok", "helm"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)
    bin_dir = tools_bin_dir(build=args.backend == "kwok")
    token = ensure_token(sandbox)
    ensure_service_account(sandbox)
    ensure_ca(sandbox, HOSTS)
    env = environment(sandbox, bin_dir, token)
    package_charts(sandbox, bin_dir, env["SANDBOX_CHART_REPO_URL"])
    if args.backend == "kwok":
        start_package_index(sandbox)  # before the daemon: its real nodes relay pods to it
    pid = read_pid(sandbox / "pids" / "daemon.pid")
    if alive(pid) and admin_call("GET", "/healthz") is not None:
        info(f"daemon already running (pid {pid})")
    else:
        if admin_call("GET", "/healthz") is not None:
            raise SandboxError(f"{admin_url()} answers but is not our daemon; stop it first")
        pid = start_daemon(sandbox, bin_dir, args.backend)
        info(f"daemon started (pid {pid}, backend {args.backend})")
    # Whether pods run for real here (the daemon decided; docs/contracts.md).
    disabled = (admin_call("GET", "/state") or {}).get("realNodeDisabled", "no answer")
    env["SANDBOX_REAL_NODE"] = "false" if disabled else "true"
    if disabled:
        info(f"no real node: {disabled}; pods are KWOK fakes and nothing listens behind them")
    write_environment(sandbox, env)
    info(f"ready: source {sandbox / 'env'}")
    return 0


# ---- down ----------------------------------------------------------------


def delete_clusters_directly(sandbox: Path) -> None:
    """Without a daemon, ask a KwokBackend of our own to delete leftover KWOK clusters."""
    # Imported here: it loads the kubernetes client (about 1 s), which only `down` needs.
    from sandbox.emulator.kwok_backend import KwokBackend  # noqa: PLC0415

    backend = KwokBackend(sandbox, tools_bin_dir(build=False), token_webhook=None)
    for cluster_id in backend.list_clusters():
        info(f"deleting cluster {cluster_id}")
        backend.delete_cluster(cluster_id)


def remove_leftover_nodes(sandbox: Path) -> None:
    """Real nodes a crashed daemon left (network namespaces, mounts, cgroups, processes)."""
    # Imported here: it loads the kubernetes client (about 1 s), which only `down` needs.
    from sandbox.node.dataplane import remove_leftover_nodes as remove  # noqa: PLC0415

    for name in remove(sandbox, tools_bin_dir(build=False)):
        info(f"removed leftover real node {name}")


def cmd_down(args) -> int:
    sandbox = sandbox_dir()
    clusters_deleted = False
    if alive(read_pid(sandbox / "pids" / "daemon.pid")) and admin_call("GET", "/healthz"):
        info("deleting every cluster (POST /shutdown)")
        answer = admin_call("POST", "/shutdown", timeout=SHUTDOWN_TIMEOUT)
        clusters_deleted = answer is not None
        if clusters_deleted:
            info(f"deleted clusters: {', '.join(answer.get('deleted') or []) or 'none'}")
    failure = None
    if not clusters_deleted:
        try:
            delete_clusters_directly(sandbox)
        except Exception as error:  # BackendError or any other: still stop every process
            failure = f"deleting leftover clusters failed: {error}"
    try:
        remove_leftover_nodes(sandbox)
    except Exception as error:  # NodeError or any other: still stop every process
        failure = failure or f"removing leftover real nodes failed: {error}"
    for pid_file in sorted((sandbox / "pids").glob("*.pid")):
        pid = read_pid(pid_file)
        if pid:
            stop(pid, pid_file.stem)
        pid_file.unlink(missing_ok=True)
    for name in ("env", "env.json"):
        (sandbox / name).unlink(missing_ok=True)
    if failure:
        raise SandboxError(failure)
    info("down")
    return 0


# ---- status --------------------------------------------------------------


def collect_status() -> dict:
    sandbox = sandbox_dir()
    base = port_base()
    healthy = admin_call("GET", "/healthz") is not None
    state = admin_call("GET", "/state") if healthy else None
    pids = {}
    for pid_file in sorted((sandbox / "pids").glob("*.pid")):
        pid = read_pid(pid_file)
        pids[pid_file.stem] = {"pid": pid, "alive": alive(pid)}
    clusters = [
        {
            "name": c["name"],
            "location": c["location"],
            "status": c["status"],
            "endpoint": c.get("endpoint", ""),
            "nodes": c.get("currentNodeCount", 0),
        }
        for c in (state or {}).get("clusters", [])
    ]
    return {
        "up": healthy,
        "sandbox_dir": str(sandbox),
        "ports": {
            "proxy": base,
            "admin": base + 1,
            "chart_repo": base + 2,
            "gke_api": base + 3,
            "pypi": host_port(base),
        },
        "clusters": clusters,
        "pids": pids,
    }


def cmd_leftovers(args) -> int:
    """Exit 1 listing what the sandbox's real nodes left (namespaces, rules, mounts, ...)."""
    from sandbox.node.dataplane import leftovers  # noqa: PLC0415 - loads the kubernetes client

    found = leftovers(sandbox_dir())
    for item in found:
        print(f"left behind: {item}")
    if not found:
        info("nothing left behind")
    return 1 if found else 0


def cmd_status(args) -> int:
    status = collect_status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"daemon: {'up' if status['up'] else 'down'} ({status['sandbox_dir']})")
        print("ports: " + ", ".join(f"{k} {v}" for k, v in status["ports"].items()))
        for c in status["clusters"]:
            print(
                f"cluster {c['name']} ({c['location']}): {c['status']}, "
                f"{c['nodes']} nodes, endpoint {c['endpoint'] or '-'}"
            )
        for name, p in status["pids"].items():
            print(f"pid {name}: {p['pid']} {'alive' if p['alive'] else 'dead'}")
    return 0 if status["up"] else EXIT_DOWN


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.cli", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build tools if needed and start the sandbox daemon")
    up.add_argument(
        "--backend",
        choices=("kwok", "fake"),
        default="kwok",
        help="fake: in-memory clusters and no tool build, for tests only",
    )
    up.set_defaults(func=cmd_up)
    commands.add_parser("down", help="delete every cluster and stop every process").set_defaults(
        func=cmd_down
    )
    commands.add_parser(
        "leftovers", help="exit 1 listing real-node state still present after down"
    ).set_defaults(func=cmd_leftovers)
    status = commands.add_parser("status", help="summary; exit 0 when up, 3 when down")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SandboxError as error:
        info(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
