"""Admin API, request log, state file and chart repository of the sandbox daemon."""

import http.client
import json
import stat

ZONE = "us-central1-a"


def raw_get(port: int, path: str) -> int:
    """Status of a GET sent exactly as written (no client-side path normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_healthz(sandbox):
    response = sandbox.plain.get(f"{sandbox.admin}/healthz", timeout=5)
    assert response.status_code == 200


def test_request_log_records_every_call_without_the_token(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    sandbox.call("GET", ZONE, "/clusters/absent")
    log = sandbox.requests_log()
    assert (log[0]["method"], log[0]["status"]) == ("POST", 200)
    assert log[-1]["path"] == f"/v1/projects/test-project/locations/{ZONE}/clusters/absent"
    assert log[-1]["status"] == 404
    assert all(set(e) == {"ts", "host", "method", "path", "status", "fault"} for e in log)
    assert {e["host"] for e in log} == {"container.googleapis.com"}
    lines = (sandbox.dir / "requests.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == log
    assert "sandbox-test-token" not in (sandbox.dir / "requests.jsonl").read_text()

    assert sandbox.plain.delete(f"{sandbox.admin}/requests", timeout=5).status_code == 200
    assert sandbox.requests_log() == []
    assert (sandbox.dir / "requests.jsonl").read_text() == ""


def test_state_file_and_endpoint_follow_changes(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    state = sandbox.plain.get(f"{sandbox.admin}/state", timeout=5).json()
    assert [c["name"] for c in state["clusters"]] == ["dask"]
    assert state["clusters"][0]["status"] == "RUNNING"
    assert [o["operationType"] for o in state["operations"]] == ["CREATE_CLUSTER"]
    on_disk = json.loads((sandbox.dir / "state.json").read_text())
    assert on_disk == state

    op = sandbox.call("DELETE", ZONE, "/clusters/dask").json()
    sandbox.wait_done(op, ZONE)
    on_disk = json.loads((sandbox.dir / "state.json").read_text())
    assert on_disk["clusters"] == []


def test_ca_keys_are_private(sandbox):
    for name in ("ca-key.pem", "server-key.pem"):
        mode = stat.S_IMODE((sandbox.dir / "ca" / name).stat().st_mode)
        assert mode == 0o600


def test_chart_repo_serves_files_read_only(sandbox):
    charts = sandbox.dir / "charts"
    (charts / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    (sandbox.dir / "secret.txt").write_text("not for the chart repo")
    repo = f"http://127.0.0.1:{sandbox.port_base + 2}"
    assert sandbox.plain.get(f"{repo}/index.yaml", timeout=5).text.startswith("apiVersion: v1")
    assert sandbox.plain.get(f"{repo}/", timeout=5).status_code == 404  # no listing
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"):
        assert raw_get(sandbox.port_base + 2, path) == 404, path
    assert sandbox.plain.put(f"{repo}/index.yaml", data="x", timeout=5).status_code == 501


def test_shutdown_deletes_backend_clusters(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    assert sandbox.backend.list_clusters() == ["test-project.us-central1-a.dask"]
    response = sandbox.plain.post(f"{sandbox.admin}/shutdown", timeout=10)
    assert response.json() == {"deleted": ["test-project.us-central1-a.dask"]}
    assert sandbox.backend.list_clusters() == []
