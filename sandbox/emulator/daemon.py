"""The sandbox daemon: GKE API emulator, CONNECT proxy, admin API and chart repo.

One process, four servers on 127.0.0.1 (ports from docs/contracts.md):
proxy = base, admin = base+1, chart repo = base+2, GKE API (TLS) = base+3.
Started detached by `python -m sandbox.cli up`; stops on SIGTERM/SIGINT or
after POST /shutdown.

    python -m sandbox.emulator.daemon --sandbox-dir .sandbox --bin-dir DIR [--backend kwok|fake]
        [--dask-version V ...] [--package-index-port PORT]
"""

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path

from sandbox.emulator.admin import AdminApp, make_admin_server, make_chart_server
from sandbox.emulator.ca import ensure_ca
from sandbox.emulator.fake_backend import FakeBackend
from sandbox.emulator.faults import Faults
from sandbox.emulator.gke import GkeService
from sandbox.emulator.google_apis import CloudProject
from sandbox.emulator.proxy import ConnectProxy
from sandbox.emulator.server import (
    GKE_HOST,
    HOSTS,
    TOKEN_REVIEW_PATH,
    GkeApp,
    RequestLog,
    make_gke_server,
)
from sandbox.emulator.tokens import TokenService, public_key_of

log = logging.getLogger("sandbox.daemon")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT_BASE = 18080
SANDBOX_PROJECT = "dask-gke-sandbox"
SERVICE_ACCOUNT_FILE = "service-account.json"  # in the sandbox directory, 0600
FALLBACK_K8S_VERSION = "1.36.3"
SERVE_POLL_SECONDS = 0.05  # how quickly a server notices shutdown()


def kubernetes_version() -> str:
    """K8S_VERSION from sandbox/tools/versions.env: the version GKE reports."""
    versions = REPO_ROOT / "sandbox" / "tools" / "versions.env"
    if versions.exists():
        for line in versions.read_text().splitlines():
            if line.startswith("K8S_VERSION="):
                return line.split("=", 1)[1].strip()
    return FALLBACK_K8S_VERSION


def write_json_atomically(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def make_backend(args, sandbox_dir: Path, token: str):
    """The cluster backend the daemon's command line asks for."""
    if args.backend == "fake":
        return FakeBackend()
    # Imported here: it loads the kubernetes client (about 1 s), which the fake backend
    # (tests) does not need.
    from sandbox.emulator.kwok_backend import KwokBackend  # noqa: PLC0415

    if args.bin_dir is None:
        raise SystemExit("--bin-dir is required with --backend kwok")
    webhook = token_webhook(sandbox_dir, args.port_base, token)
    backend = KwokBackend(sandbox_dir, args.bin_dir, webhook)
    backend.data_plane.dask_versions = list(args.dask_version or [])
    backend.data_plane.index_port = args.package_index_port
    reason = backend.data_plane.real_node_reason
    log.info("real node: %s", f"none ({reason})" if reason else "one per cluster")
    return backend


def token_webhook(sandbox_dir: Path, port_base: int, token: str):
    """How the KWOK clusters' API servers reach the emulator's TokenReview webhook."""
    from sandbox.emulator.kwok_backend import TokenWebhook  # noqa: PLC0415

    return TokenWebhook(
        url=f"https://127.0.0.1:{port_base + 3}{TOKEN_REVIEW_PATH}",
        ca_file=sandbox_dir.resolve() / "ca" / "ca.pem",
        server_name=GKE_HOST,
        probe_token=token,
    )


def service_account_keys(sandbox_dir: Path) -> dict[str, str]:
    """e-mail -> public key of the sandbox's service-account key, if it has one."""
    path = sandbox_dir / SERVICE_ACCOUNT_FILE
    if not path.is_file():
        return {}
    email, public = public_key_of(json.loads(path.read_text(encoding="utf-8")))
    return {email: public}


class Daemon:
    """Builds the four servers around one GkeService and runs them on threads."""

    def __init__(self, sandbox_dir: Path, port_base: int, backend, token: str):
        self.sandbox_dir = sandbox_dir
        self.backend = backend
        state_path = sandbox_dir / "state.json"
        self.faults = Faults()
        self.request_log = RequestLog(sandbox_dir / "requests.jsonl")
        self.request_log.clear()  # the file logs this daemon's calls, as GET /requests does
        self.tokens = TokenService(token, service_account_keys(sandbox_dir))
        self.service = GkeService(
            backend,
            self.faults,
            kubernetes_version(),
            on_change=lambda: write_json_atomically(state_path, self.service.snapshot()),
        )
        # What GKE checks in the project on every create; it reads the clusters' usage.
        self.cloud = CloudProject(SANDBOX_PROJECT, self.faults, self.service.usage)
        self.service.prerequisites = self.cloud
        write_json_atomically(state_path, self.service.snapshot())
        paths = ensure_ca(sandbox_dir, HOSTS)
        charts_dir = sandbox_dir / "charts"
        charts_dir.mkdir(parents=True, exist_ok=True)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        api = GkeApp(self.service, self.cloud, self.faults, self.request_log, self.tokens)
        self.servers = [
            make_gke_server(api, port_base + 3, paths["server_cert"], paths["server_key"]),
            ConnectProxy(port_base, port_base + 3),
            make_admin_server(AdminApp(api, backend, self.stop), port_base + 1),
            make_chart_server(charts_dir, port_base + 2),
        ]

    def start(self) -> None:
        for server in self.servers:
            threading.Thread(
                target=server.serve_forever,
                args=(SERVE_POLL_SECONDS,),
                name=type(server).__name__,
                daemon=True,
            ).start()
        log.info("serving on 127.0.0.1 ports %s", [s.server_address[1] for s in self.servers])

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()
        data_plane = getattr(self.backend, "data_plane", None)
        if data_plane is not None:
            data_plane.shutdown()
        log.info("stopped")
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path, required=True)
    parser.add_argument("--bin-dir", type=Path)
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    parser.add_argument(
        "--backend",
        choices=("kwok", "fake"),
        default="kwok",
        help="fake: in-memory clusters, for tests only",
    )
    parser.add_argument(
        "--dask-version",
        action="append",
        help="Dask version whose images every real node imports (repeat for several)",
    )
    parser.add_argument(
        "--package-index-port",
        type=int,
        help="127.0.0.1 port of the package index that pods reach as pypi.dask-gke.internal",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sandbox_dir = args.sandbox_dir.resolve()
    token = (sandbox_dir / "token").read_text().strip()
    backend = make_backend(args, sandbox_dir, token)
    daemon = Daemon(sandbox_dir, args.port_base, backend, token)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: threading.Thread(target=daemon.stop, daemon=True).start())
    daemon.start()
    daemon.wait()


if __name__ == "__main__":
    main()
