"""GKE emulator: operation lifecycle, node pools and conflicting operations."""

from tests.unit.sandbox.conftest import GKE, PROJECT

ZONE = "us-central1-a"
CLUSTER_ID = f"{PROJECT}.{ZONE}.dask"


def post_cluster(sandbox, name="dask", nodes=3):
    response = sandbox.call(
        "POST", ZONE, "/clusters", json={"cluster": {"name": name, "initialNodeCount": nodes}}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_operation_stays_running_until_the_backend_returns(sandbox):
    sandbox.backend.gate.clear()
    op = post_cluster(sandbox)
    assert op["status"] == "RUNNING"
    assert op["targetLink"] == f"{GKE}/projects/{PROJECT}/zones/{ZONE}/clusters/dask"
    assert op["selfLink"] == f"{GKE}/projects/{PROJECT}/zones/{ZONE}/operations/{op['name']}"

    polled = sandbox.call("GET", ZONE, f"/operations/{op['name']}").json()
    assert polled["status"] == "RUNNING"
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["status"] == "PROVISIONING"
    assert "endpoint" not in cluster  # unset until the backend returns it
    assert cluster["nodePools"][0]["status"] == "PROVISIONING"

    sandbox.backend.gate.set()
    done = sandbox.wait_done(op, ZONE)
    assert done["endTime"] >= done["startTime"]
    assert "error" not in done
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["status"] == "RUNNING"


def test_second_operation_while_one_runs_is_failed_precondition(sandbox):
    sandbox.backend.gate.clear()
    op = post_cluster(sandbox)
    response = sandbox.call("DELETE", ZONE, "/clusters/dask")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "FAILED_PRECONDITION"
    assert op["name"] in error["message"]
    sandbox.backend.gate.set()
    sandbox.wait_done(op, ZONE)
    delete = sandbox.call("DELETE", ZONE, "/clusters/dask")
    assert delete.status_code == 200


def test_failed_backend_call_ends_done_with_error(sandbox):
    sandbox.backend.fail_next = "kwokctl create cluster failed: boom"
    done = sandbox.wait_done(post_cluster(sandbox), ZONE)
    assert done["status"] == "DONE"
    assert done["error"] == {"code": 13, "message": "kwokctl create cluster failed: boom"}
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["status"] == "ERROR"
    # A cluster in ERROR can still be deleted.
    delete = sandbox.wait_done(sandbox.call("DELETE", ZONE, "/clusters/dask").json(), ZONE)
    assert "error" not in delete
    assert sandbox.call("GET", ZONE, "/clusters/dask").status_code == 404


def test_node_pool_delete_keeps_a_failed_cluster_in_error(sandbox):
    # google.cloud's cluster module deletes default-pool after every create,
    # even a failed one: that must not make the cluster look RUNNING.
    sandbox.backend.fail_next = "kwokctl create cluster failed: boom"
    sandbox.wait_done(post_cluster(sandbox), ZONE)
    op = sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/default-pool").json()
    sandbox.wait_done(op, ZONE)
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["status"] == "ERROR"
    assert cluster["statusMessage"] == "kwokctl create cluster failed: boom"


def test_delete_cluster_lifecycle(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    sandbox.backend.gate.clear()
    op = sandbox.call("DELETE", ZONE, "/clusters/dask").json()
    assert op["operationType"] == "DELETE_CLUSTER"
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["status"] == "STOPPING"
    sandbox.backend.gate.set()
    sandbox.wait_done(op, ZONE)
    assert sandbox.call("GET", ZONE, "/clusters/dask").status_code == 404
    assert CLUSTER_ID not in sandbox.backend.clusters
    assert ("delete_cluster", CLUSTER_ID) in sandbox.backend.calls


def test_node_pool_create_resize_delete(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    body = {
        "nodePool": {
            "name": "workers",
            "initialNodeCount": 2,
            "config": {"machineType": "n1-standard-4"},
        }
    }
    create = sandbox.call("POST", ZONE, "/clusters/dask/nodePools", json=body).json()
    assert create["operationType"] == "CREATE_NODE_POOL"
    assert create["targetLink"].endswith("/zones/us-central1-a/clusters/dask/nodePools/workers")
    sandbox.wait_done(create, ZONE)
    pool = sandbox.call("GET", ZONE, "/clusters/dask/nodePools/workers").json()
    assert pool["status"] == "RUNNING" and pool["initialNodeCount"] == 2
    assert sandbox.backend.clusters[CLUSTER_ID]["workers"] == {
        "count": 2,
        "machine_type": "n1-standard-4",
    }

    duplicate = sandbox.call("POST", ZONE, "/clusters/dask/nodePools", json=body)
    assert duplicate.status_code == 409

    resize = sandbox.call(
        "POST", ZONE, "/clusters/dask/nodePools/workers:setSize", json={"nodeCount": 7}
    )
    assert resize.status_code == 200, resize.text
    assert resize.json()["operationType"] == "SET_NODE_POOL_SIZE"
    sandbox.wait_done(resize.json(), ZONE)
    assert sandbox.backend.clusters[CLUSTER_ID]["workers"]["count"] == 7
    assert sandbox.call("GET", ZONE, "/clusters/dask").json()["currentNodeCount"] == 3 + 7

    # The zones form spells setSize as a path segment.
    zonal = sandbox.call(
        "POST",
        ZONE,
        "/clusters/dask/nodePools/workers/setSize",
        kind="zones",
        json={"nodeCount": "1"},
    )
    assert zonal.status_code == 200, zonal.text
    sandbox.wait_done(zonal.json(), ZONE)
    assert sandbox.backend.clusters[CLUSTER_ID]["workers"]["count"] == 1

    delete = sandbox.call("DELETE", ZONE, "/clusters/dask/nodePools/workers").json()
    assert delete["operationType"] == "DELETE_NODE_POOL"
    sandbox.wait_done(delete, ZONE)
    assert sandbox.call("GET", ZONE, "/clusters/dask/nodePools/workers").status_code == 404
    assert "workers" not in sandbox.backend.clusters[CLUSTER_ID]


def test_negative_set_size_is_invalid_argument(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    response = sandbox.call(
        "POST", ZONE, "/clusters/dask/nodePools/default-pool:setSize", json={"nodeCount": -1}
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_node_pool_of_missing_cluster_is_404(sandbox):
    body = {"nodePool": {"name": "workers", "initialNodeCount": 1}}
    response = sandbox.call("POST", ZONE, "/clusters/absent/nodePools", json=body)
    assert response.status_code == 404


def test_operations_are_listed_and_unknown_ones_are_404(sandbox):
    done = sandbox.create_cluster(ZONE, "dask")
    listed = sandbox.call("GET", ZONE, "/operations").json()["operations"]
    assert [op["name"] for op in listed] == [done["name"]]
    assert sandbox.call("GET", "europe-west1-b", f"/operations/{done['name']}").status_code == 404
    assert sandbox.call("GET", ZONE, "/operations/operation-0-none").status_code == 404
