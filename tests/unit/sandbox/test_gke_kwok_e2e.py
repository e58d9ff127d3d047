"""The GKE emulator on a real KWOK cluster: create through the API, use it, delete it.

Needs the built sandbox tools (skipped otherwise).
"""

import base64
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
import requests
from kubernetes import client

from sandbox.emulator.daemon import Daemon, token_webhook
from sandbox.emulator.kwok_backend import KwokBackend
from tests.unit.sandbox.conftest import GKE, free_port_base
from tests.unit.sandbox.tools import bin_dir, missing_tools

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd")
TOOLS += ("kwok", "kwokctl")
TOKEN = "sandbox-kwok-e2e-token-0123456789"
PROJECT = "dask-gke-sandbox"
ZONE = "us-central1-a"
OPERATION_TIMEOUT = 300  # seconds: a cold KWOK control plane on 2 busy cores


def kill_leftovers(sandbox_dir: Path) -> None:
    """SIGKILL what kwokctl started under sandbox_dir, should deleting the cluster fail."""
    for pid_file in (sandbox_dir / "kwok").glob("clusters/*/pids/*.pid"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def wait_done(session, url: str) -> dict:
    deadline = time.monotonic() + OPERATION_TIMEOUT
    while time.monotonic() < deadline:
        op = session.get(url, timeout=10).json()
        if op["status"] == "DONE":
            return op
        time.sleep(1)
    raise AssertionError(f"operation {url} not DONE after {OPERATION_TIMEOUT} s")


@pytest.mark.sandbox
@pytest.mark.skipif(
    bool(missing_tools(TOOLS)), reason=f"sandbox tools not built: {missing_tools(TOOLS)}"
)
def test_cluster_created_through_the_api_is_a_real_cluster():
    # A short path: kwokctl puts unix sockets under the sandbox directory.
    sandbox_dir = Path(tempfile.mkdtemp(prefix="gke-e2e-"))
    (sandbox_dir / "token").write_text(TOKEN)
    base = free_port_base()
    # The API servers check bearer tokens with the daemon's TokenReview webhook.
    backend = KwokBackend(sandbox_dir, bin_dir(), token_webhook(sandbox_dir, base, TOKEN))
    daemon = Daemon(sandbox_dir, base, backend, TOKEN)
    daemon.start()
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": f"http://127.0.0.1:{base}"}
    session.verify = str(sandbox_dir / "ca" / "ca.pem")
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    clusters = f"{GKE}/projects/{PROJECT}/locations/{ZONE}/clusters"
    operations = f"{GKE}/projects/{PROJECT}/locations/{ZONE}/operations"
    try:
        started = time.monotonic()
        body = {"cluster": {"name": "dask", "initialNodeCount": 3}}
        op = session.post(clusters, json=body, timeout=10).json()
        done = wait_done(session, f"{operations}/{op['name']}")
        print(f"CREATE_CLUSTER with 3 nodes: {time.monotonic() - started:.1f} s")
        assert "error" not in done, done["error"]
        cluster = session.get(f"{clusters}/dask", timeout=10).json()
        assert cluster["status"] == "RUNNING"

        # The endpoint, CA and the Google token make a working kubeconfig, as on GKE.
        ca_file = sandbox_dir / "cluster-ca.pem"
        ca_file.write_bytes(base64.b64decode(cluster["masterAuth"]["clusterCaCertificate"]))
        config = client.Configuration()
        config.host = f"https://{cluster['endpoint']}"
        config.ssl_ca_cert = str(ca_file)
        config.api_key = {"authorization": f"Bearer {TOKEN}"}
        config.proxy = None
        with client.ApiClient(config) as api:
            nodes = client.CoreV1Api(api).list_node(
                label_selector="cloud.google.com/gke-nodepool=default-pool"
            )
        assert len(nodes.items) == 3

        started = time.monotonic()
        op = session.delete(f"{clusters}/dask", timeout=10).json()
        done = wait_done(session, f"{operations}/{op['name']}")
        print(f"DELETE_CLUSTER: {time.monotonic() - started:.1f} s")
        assert "error" not in done, done["error"]
        assert backend.list_clusters() == []
    finally:
        daemon.stop()
        try:
            for cluster_id in backend.list_clusters():
                backend.delete_cluster(cluster_id)
        finally:
            kill_leftovers(sandbox_dir)
        shutil.rmtree(sandbox_dir, ignore_errors=True)
