"""The benchmarks' GKE and admin clients against a real emulator daemon (fake cluster backend)."""

import pytest

from benchmarks.sandbox_api import Admin, BenchError, Gke
from sandbox.emulator.daemon import Daemon
from sandbox.emulator.fake_backend import FakeBackend
from tests.unit.sandbox.conftest import free_port_base

TOKEN = "bench-test-token"
LOCATION = "us-central1-a"


@pytest.fixture
def sandbox_env(tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    base = free_port_base()
    daemon = Daemon(tmp_path, base, FakeBackend(), TOKEN)
    daemon.start()
    yield {
        "GCP_PROJECT": "bench-project",
        "GCP_ACCESS_TOKEN": TOKEN,
        "HTTPS_PROXY": f"http://127.0.0.1:{base}",
        "REQUESTS_CA_BUNDLE": str(tmp_path / "ca" / "ca.pem"),
        "SANDBOX_ADMIN_URL": f"http://127.0.0.1:{base + 1}",
    }
    daemon.faults.clear()
    daemon.stop()


def test_create_wait_and_delete_a_cluster_with_its_pool(sandbox_env):
    env = sandbox_env
    gke, admin = Gke(env, LOCATION), Admin(env)
    assert admin.healthy()
    pool = {"name": "dask-pool", "initialNodeCount": 5, "config": {"machineType": "n1-standard-1"}}
    done = gke.wait_operation(gke.create_cluster("bench", pool), timeout=10, poll=0.05)
    assert done["status"] == "DONE"
    cluster = gke.cluster("bench")
    assert cluster["status"] == "RUNNING"
    assert [p["name"] for p in cluster["nodePools"]] == ["dask-pool"]
    assert gke.cluster("other") is None

    methods = [entry["method"] for entry in admin.requests()]
    assert methods[0] == "POST"
    admin.clear_requests()
    assert admin.requests() == []

    assert gke.delete_cluster_and_wait("bench", timeout=10) is True
    assert gke.cluster("bench") is None
    assert gke.delete_cluster_and_wait("bench", timeout=10) is False
    assert [e["method"] for e in admin.requests()].count("DELETE") == 1


def test_a_failed_operation_raises_with_its_message(sandbox_env):
    env = sandbox_env
    gke, admin = Gke(env, LOCATION), Admin(env)
    admin.set_faults({"operations": {"mode": "fail", "count": 1, "types": ["CREATE_CLUSTER"]}})
    assert admin.faults()["operations"]["mode"] == "fail"
    pool = {"name": "dask-pool", "initialNodeCount": 1}
    with pytest.raises(BenchError, match="failed"):
        gke.wait_operation(gke.create_cluster("doomed", pool), timeout=10, poll=0.05)


def test_an_api_error_names_the_call(sandbox_env):
    env = sandbox_env
    with pytest.raises(BenchError, match=r"GKE DELETE /clusters/missing: HTTP 404"):
        Gke(env, LOCATION).delete_cluster("missing")
