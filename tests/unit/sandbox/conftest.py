"""Fixtures for the sandbox daemon tests: a real daemon on loopback with the fake backend."""

import json
import secrets
import socket
import threading
import time

import pytest
import requests

from sandbox.emulator.daemon import SANDBOX_PROJECT, SERVICE_ACCOUNT_FILE, Daemon
from sandbox.emulator.fake_backend import FakeBackend
from sandbox.emulator.tokens import make_service_account_key

TOKEN = "sandbox-test-token"
GKE = "https://container.googleapis.com/v1"
PROJECT = "test-project"


def free_port_base(span: int = 4) -> int:
    """A base port with `span` free consecutive ports on 127.0.0.1."""
    for _ in range(50):
        base = 20000 + secrets.randbelow(40000)
        sockets = []
        try:
            for port in range(base, base + span):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of ports found on 127.0.0.1 after 50 tries")


class GatedBackend(FakeBackend):
    """FakeBackend whose calls wait until the test opens the gate (bounded)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def _record(self, *call):
        if not self.gate.wait(timeout=10):
            raise TimeoutError("test gate stayed closed for 10 s")
        super()._record(*call)


class Sandbox:
    """A running daemon and clients for its GKE API (through the proxy) and admin API."""

    def __init__(self, tmp_path, service_account: bool = False):
        self.dir = tmp_path
        (tmp_path / "token").write_text(TOKEN + "\n")
        self.key_file = tmp_path / SERVICE_ACCOUNT_FILE
        if service_account:  # before the daemon starts: it trusts the key it finds
            key = make_service_account_key(SANDBOX_PROJECT, "automation")
            self.key_file.write_text(json.dumps(key))
        self.backend = GatedBackend()
        self.port_base = free_port_base()
        self.daemon = Daemon(tmp_path, self.port_base, self.backend, TOKEN)
        self.daemon.start()
        self.admin = f"http://127.0.0.1:{self.port_base + 1}"
        self.session = requests.Session()
        self.session.trust_env = False  # the machine's proxy variables must not interfere
        self.session.proxies = {"https": f"http://127.0.0.1:{self.port_base}"}
        self.session.verify = str(tmp_path / "ca" / "ca.pem")
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        self.plain = requests.Session()
        self.plain.trust_env = False

    def url(self, location: str, rest: str = "", kind: str = "locations") -> str:
        return f"{GKE}/projects/{PROJECT}/{kind}/{location}{rest}"

    def call(self, method: str, location: str, rest: str = "", kind="locations", **kwargs):
        return self.session.request(method, self.url(location, rest, kind), timeout=10, **kwargs)

    def wait_done(self, operation: dict, location: str, timeout: float = 10) -> dict:
        """Poll the operation until DONE (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            op = self.call("GET", location, f"/operations/{operation['name']}").json()
            if op["status"] == "DONE":
                return op
            time.sleep(0.02)
        raise AssertionError(f"operation {operation['name']} not DONE after {timeout} s")

    def create_cluster(self, location: str, name: str, nodes: int = 3) -> dict:
        response = self.call(
            "POST",
            location,
            "/clusters",
            json={"cluster": {"name": name, "initialNodeCount": nodes}},
        )
        assert response.status_code == 200, response.text
        return self.wait_done(response.json(), location)

    def requests_log(self) -> list[dict]:
        return self.plain.get(f"{self.admin}/requests", timeout=5).json()

    def close(self):
        self.backend.gate.set()
        self.daemon.faults.clear()  # releases stuck operations
        self.daemon.stop()

    def put_faults(self, settings: dict) -> dict:
        response = self.plain.put(f"{self.admin}/faults", json=settings, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def google(self, method: str, url: str, **kwargs):
        """A call to any emulated Google API host, through the proxy."""
        return self.session.request(method, url, timeout=10, **kwargs)


@pytest.fixture
def sandbox(tmp_path):
    box = Sandbox(tmp_path)
    yield box
    box.close()


@pytest.fixture
def keyed_sandbox(tmp_path):
    """A sandbox whose token endpoint knows a service-account key (box.key_file)."""
    box = Sandbox(tmp_path, service_account=True)
    yield box
    box.close()
