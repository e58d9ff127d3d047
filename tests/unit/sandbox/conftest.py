"""Fixtures for the sandbox daemon tests: a real daemon on loopback with the fake backend."""

import secrets
import socket
import threading
import time

import pytest
import requests

from sandbox.emulator.daemon import Daemon
from sandbox.emulator.fake_backend import FakeBackend

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

    def __init__(self, tmp_path):
        self.dir = tmp_path
        (tmp_path / "token").write_text(TOKEN + "\n")
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


@pytest.fixture
def sandbox(tmp_path):
    box = Sandbox(tmp_path)
    yield box
    box.close()
