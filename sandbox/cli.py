"""Start, stop and inspect the local sandbox.

    python -m sandbox.cli up [--backend kwok|fake]   build tools if needed, start the daemon
    python -m sandbox.cli down                        delete every cluster, stop every process
    python -m sandbox.cli status [--json]             exit 0 when the daemon serves, 3 when not

State lives in .sandbox/ (DASK_GKE_SANDBOX_DIR overrides); ports start at 18080
(DASK_GKE_SANDBOX_PORT_BASE overrides). See docs/contracts.md.
"""

import argparse
import http.client
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox.emulator.ca import ensure_ca
from sandbox.emulator.daemon import SANDBOX_PROJECT, SERVICE_ACCOUNT_FILE
from sandbox.emulator.server import HOSTS
from sandbox.emulator.tokens import make_service_account_key

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "sandbox" / "tools" / "build.sh"
CHART_SOURCES = REPO_ROOT / "sandbox" / "charts"
DEFAULT_PORT_BASE = 18080
PROJECT = SANDBOX_PROJECT
# The automation's identity: a JSON key the emulator's token endpoint accepts.
SERVICE_ACCOUNT = "dask-gke-automation"
HEALTH_TIMEOUT = 30.0  # seconds for a started daemon to answer /healthz
SHUTDOWN_TIMEOUT = 600.0  # seconds for the daemon to delete every cluster
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
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


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) no longer counts as running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int) -> None:
    """SIGTERM, wait (bounded), then SIGKILL."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    info(f"pid {pid} still running {STOP_TIMEOUT:.0f} s after SIGTERM: sending SIGKILL")
    os.kill(pid, signal.SIGKILL)


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
    ]
    # The daemon talks to its KWOK clusters on loopback directly: never through a proxy
    # (a sourced .sandbox/env would otherwise hand it our own CONNECT proxy).
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    with log_path.open("a", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
    pid = read_pid(sandbox / "pids" / "daemon.pid")
    if alive(pid) and admin_call("GET", "/healthz") is not None:
        info(f"daemon already running (pid {pid})")
    else:
        if admin_call("GET", "/healthz") is not None:
            raise SandboxError(f"{admin_url()} answers but is not our daemon; stop it first")
        pid = start_daemon(sandbox, bin_dir, args.backend)
        info(f"daemon started (pid {pid}, backend {args.backend})")
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
    for pid_file in sorted((sandbox / "pids").glob("*.pid")):
        pid = read_pid(pid_file)
        if pid:
            stop_pid(pid)
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
        "ports": {"proxy": base, "admin": base + 1, "chart_repo": base + 2, "gke_api": base + 3},
        "clusters": clusters,
        "pids": pids,
    }


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
