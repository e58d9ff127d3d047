"""The sandbox as the benchmarks see it: env.json, the admin API and the GKE API (REST).

The GKE calls go the way the google.cloud modules' go: HTTPS to
container.googleapis.com through the sandbox's CONNECT proxy, trusting the
sandbox CA, with the sandbox token as bearer token (docs/contracts.md).
"""

import json
import os
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
GKE_API = "https://container.googleapis.com/v1"
HTTP_TIMEOUT = 30.0  # seconds for one API call


class BenchError(Exception):
    """A benchmark step that cannot go on; the message says what and why."""


def sandbox_dir() -> Path:
    return Path(os.environ.get("DASK_GKE_SANDBOX_DIR") or REPO_ROOT / ".sandbox")


def load_env() -> dict[str, str]:
    path = sandbox_dir() / "env.json"
    if not path.is_file():
        raise BenchError(f"{path} is missing: start the sandbox first (make sandbox)")
    return json.loads(path.read_text(encoding="utf-8"))


class Admin:
    """The sandbox admin API (SANDBOX_ADMIN_URL): health, request log, faults."""

    def __init__(self, env: dict[str, str]):
        self.url = env["SANDBOX_ADMIN_URL"].rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: never through a proxy

    def _call(self, method: str, path: str, body=None):
        response = self.session.request(method, self.url + path, json=body, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise BenchError(f"admin {method} {path}: HTTP {response.status_code} {response.text}")
        return response.json() if response.content else None

    def healthy(self) -> bool:
        try:
            return self.session.get(self.url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def requests(self) -> list[dict]:
        answer = self._call("GET", "/requests")
        return answer["requests"] if isinstance(answer, dict) else answer

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def set_real_node(self, enabled: bool) -> None:
        """Real nodes for clusters created from now on, or fake nodes only."""
        self._call("PUT", "/real-node", {"enabled": enabled})

    def real_node(self) -> bool:
        return not self._call("GET", "/state").get("realNodeDisabled")

    def faults(self) -> dict:
        return self._call("GET", "/faults") or {}

    def set_faults(self, settings: dict) -> None:
        self._call("PUT", "/faults", settings)


class Gke:
    """Just the GKE calls the raw tutorial script and the cleanup make."""

    def __init__(self, env: dict[str, str], location: str):
        self.base = f"{GKE_API}/projects/{env['GCP_PROJECT']}/locations/{location}"
        self.session = requests.Session()
        self.session.trust_env = False  # explicit below, whatever the machine exports
        self.session.proxies = {"https": env["HTTPS_PROXY"]}
        self.session.verify = env["REQUESTS_CA_BUNDLE"]
        self.session.headers["Authorization"] = f"Bearer {env['GCP_ACCESS_TOKEN']}"

    def _call(self, method: str, path: str, body=None) -> dict:
        response = self.session.request(method, self.base + path, json=body, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise BenchError(f"GKE {method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def cluster(self, name: str) -> dict | None:
        """The cluster, or None when it does not exist."""
        clusters = self._call("GET", "/clusters").get("clusters", [])
        return next((c for c in clusters if c["name"] == name), None)

    def create_cluster(self, name: str, pool: dict) -> dict:
        """POST a cluster whose only node pool is `pool` (as gcloud --num-nodes does)."""
        return self._call("POST", "/clusters", {"cluster": {"name": name, "nodePools": [pool]}})

    def delete_cluster(self, name: str) -> dict:
        return self._call("DELETE", f"/clusters/{name}")

    def wait_operation(self, operation: dict, timeout: float, poll: float = 1.0) -> dict:
        """Poll the operation until DONE; fail on its error or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while operation.get("status") != "DONE":
            if time.monotonic() > deadline:
                raise BenchError(
                    f"operation {operation['name']} ({operation.get('operationType')})"
                    f" not DONE after {timeout:.0f} s"
                )
            time.sleep(poll)
            operation = self._call("GET", f"/operations/{operation['name']}")
        if operation.get("error"):
            raise BenchError(f"operation {operation['name']} failed: {operation['error']}")
        return operation

    def delete_cluster_and_wait(self, name: str, timeout: float) -> bool:
        """Delete the cluster if it exists; True when there was one."""
        current = self.cluster(name)
        if current is None:
            return False
        if current.get("status") == "STOPPING":
            self._wait_absent(name, timeout)
            return True
        self.wait_operation(self.delete_cluster(name), timeout)
        self._wait_absent(name, timeout)
        return True

    def _wait_absent(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.cluster(name) is not None:
            if time.monotonic() > deadline:
                raise BenchError(f"cluster {name} still listed {timeout:.0f} s after its delete")
            time.sleep(1.0)
