"""Start, stop and check the sandbox's caching PyPI proxy (devpi-server) on 127.0.0.1.

Why devpi-server (see sandbox/README.md): a well-kept caching mirror whose
cache (files and index pages) persists on disk across restarts, and which can
be told never to fetch PyPI's full list of project names
(`mirror_no_project_list`): it asks PyPI only for the projects pip asks for.
Its server directory holds an SQLite database that one server may open at a
time, so each sandbox gets its own directory under ~/.cache/dask-gke/pypi/.
"""

import base64
import hashlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.cli import PROXY_VARIABLES
from sandbox.images.config import HOST_CA_BUNDLE, PYPI_INDEX, cache_root
from sandbox.node.commands import NodeError
from sandbox.node.processes import alive, read_pid, stop_pid
from sandbox.pypi import host_port
from sandbox.subprocesses import CommandError, run_bounded, start_logged

PID_NAME = "pypi.pid"
LOG_NAME = "pypi.log"
START_TIMEOUT = 60.0  # seconds for devpi-server to answer /+api (it starts in about 5 s)
INIT_TIMEOUT = 60.0
CALL_TIMEOUT = 10.0
MIRROR_INDEX = "root/pypi"
# Index pages are refreshed after this many seconds; files never change.
MIRROR_CACHE_EXPIRY = 1800


class PypiError(Exception):
    """The package index could not be started or configured."""


def server_dir(sandbox_dir: Path) -> Path:
    """This sandbox's devpi server directory (persistent cache, one server at a time)."""
    key = hashlib.sha256(str(sandbox_dir.resolve()).encode()).hexdigest()[:12]
    return cache_root() / "pypi" / key


def _tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not os.access(path, os.X_OK):
        raise PypiError(f"{path} is missing: run `make setup` (requirements.txt pins devpi-server)")
    return path


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    # TLS to PyPI is intercepted here: only the host's bundle trusts it.
    env["SSL_CERT_FILE"] = str(HOST_CA_BUNDLE)
    env["REQUESTS_CA_BUNDLE"] = str(HOST_CA_BUNDLE)
    env["PYTHONWARNINGS"] = "ignore"  # pyramid's pkg_resources deprecation, on every start
    return env


def _call(port: int, method: str, path: str, body=None, auth: str | None = None):
    """(status, JSON answer) of devpi's HTTP API on 127.0.0.1:port."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if auth:
        headers["X-Devpi-Auth"] = auth
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
    )
    # Loopback only: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=CALL_TIMEOUT) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, None


def healthy(port: int) -> bool:
    try:
        return _call(port, "GET", "/+api")[0] == 200
    except (OSError, ValueError):
        return False


def _initialise(directory: Path) -> None:
    """A new server directory with a random root password and login secret (0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    password = secrets.token_urlsafe(24)
    (directory / "root-password").write_text(password + "\n")
    os.chmod(directory / "root-password", 0o600)
    (directory / "secret").write_text(secrets.token_urlsafe(48) + "\n")
    os.chmod(directory / "secret", 0o600)
    argv = [
        str(_tool("devpi-init")),
        "--serverdir",
        str(directory / "server"),
        "--no-root-pypi",
        # One token: a password that starts with "-" (token_urlsafe gives one in 64)
        # would otherwise be read as an option ("expected one argument").
        f"--root-passwd={password}",
    ]
    # Named, not shown: argv carries the password.
    try:
        result = run_bounded(argv, INIT_TIMEOUT, shown="devpi-init", env=_environment())
    except CommandError as error:
        raise PypiError(str(error)) from error
    if result.returncode != 0:
        raise PypiError(f"devpi-init failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _ensure_mirror(directory: Path, port: int) -> None:
    """Create root/pypi as a PyPI mirror that never downloads PyPI's list of project names."""
    status, _ = _call(port, "GET", f"/{MIRROR_INDEX}")
    if status == 200:
        return
    password = (directory / "root-password").read_text().strip()
    status, answer = _call(port, "POST", "/+login", {"user": "root", "password": password})
    if status != 200 or not answer:
        raise PypiError(f"devpi login as root failed with HTTP {status}")
    token = base64.b64encode(f"root:{answer['result']['password']}".encode()).decode()
    config = {
        "type": "mirror",
        "mirror_url": PYPI_INDEX,
        "mirror_no_project_list": True,
        "mirror_cache_expiry": MIRROR_CACHE_EXPIRY,
        "volatile": False,
    }
    status, _ = _call(port, "PUT", f"/{MIRROR_INDEX}", config, auth=token)
    if status not in (200, 201):
        raise PypiError(f"creating the devpi index {MIRROR_INDEX} failed with HTTP {status}")


def start(sandbox_dir: Path, port_base: int, directory: Path | None = None) -> int:
    """Start (or find running) this sandbox's index on 127.0.0.1:host_port(port_base); its PID.

    directory: the devpi server directory (default: server_dir(sandbox_dir))."""
    port = host_port(port_base)
    pid_file = sandbox_dir / "pids" / PID_NAME
    directory = directory or server_dir(sandbox_dir)
    pid = read_pid(pid_file)
    if alive(pid) and healthy(port):
        _ensure_mirror(directory, port)
        return pid
    if healthy(port):
        raise PypiError(f"127.0.0.1:{port} answers but is not this sandbox's index; stop it first")
    if not (directory / "server" / ".nodeinfo").exists():
        _initialise(directory)
    argv = [
        str(_tool("devpi-server")),
        "--serverdir",
        str(directory / "server"),
        "--secretfile",
        str(directory / "secret"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--restrict-modify",
        "root",
        # One request at a time: with the default 50 threads, pods asking for the
        # same not-yet-cached project at once got 404 "The project s3fs does not
        # exist" (devpi-server 6.20.3, seen with 5 pods), and their pip failed.
        "--threads",
        "1",
        "--mirror-cache-expiry",
        str(MIRROR_CACHE_EXPIRY),
    ]
    log_path = sandbox_dir / "logs" / LOG_NAME
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log_file:
        process = start_logged(argv, log_file, env=_environment())
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if healthy(port):
            _ensure_mirror(directory, port)
            return process.pid
        if process.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise PypiError(f"devpi-server exited with code {process.returncode}; see {log_path}")
        time.sleep(0.2)
    _stop(process.pid)
    pid_file.unlink(missing_ok=True)
    raise PypiError(
        f"devpi-server (pid {process.pid}) did not answer http://127.0.0.1:{port}/+api "
        f"within {START_TIMEOUT:.0f} s; see {log_path}"
    )


def stop(sandbox_dir: Path) -> None:
    """Stop this sandbox's index (by its recorded PID); nothing to do when it is not running."""
    pid_file = sandbox_dir / "pids" / PID_NAME
    pid = read_pid(pid_file)
    if pid and alive(pid):
        _stop(pid)
    pid_file.unlink(missing_ok=True)


def _stop(pid: int) -> None:
    try:
        stop_pid(pid, "devpi-server")
    except NodeError as error:
        raise PypiError(str(error)) from error
