"""GKE emulator: cluster shapes, routes and errors, through the proxy over TLS."""

import base64

import pytest

from tests.unit.sandbox.conftest import GKE, PROJECT

ZONE = "us-central1-a"


def error_of(response) -> dict:
    return response.json()["error"]


def test_create_cluster_makes_default_pool_from_initial_node_count(sandbox):
    op = sandbox.create_cluster(ZONE, "dask", nodes=5)
    assert op["operationType"] == "CREATE_CLUSTER"
    assert "error" not in op

    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["status"] == "RUNNING"
    assert cluster["location"] == ZONE and cluster["zone"] == ZONE
    assert cluster["selfLink"] == f"{GKE}/projects/{PROJECT}/zones/{ZONE}/clusters/dask"
    assert cluster["endpoint"].startswith("127.0.0.1:")
    ca_pem = base64.b64decode(cluster["masterAuth"]["clusterCaCertificate"]).decode()
    assert ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert cluster["currentMasterVersion"] == cluster["currentNodeVersion"]
    assert cluster["currentNodeCount"] == 5
    assert cluster["createTime"]
    [pool] = cluster["nodePools"]
    assert pool["name"] == "default-pool"
    assert pool["status"] == "RUNNING"
    assert pool["initialNodeCount"] == 5
    assert pool["config"]["machineType"] == "e2-medium"
    assert len(pool["instanceGroupUrls"]) == 1
    # The backend got the cluster and the pool's nodes.
    cluster_id = f"{PROJECT}.{ZONE}.dask"
    assert sandbox.backend.clusters[cluster_id]["default-pool"]["count"] == 5


def test_int64_fields_are_strings_and_int32_fields_numbers(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert cluster["defaultMaxPodsConstraint"]["maxPodsPerNode"] == "110"
    assert cluster["nodePools"][0]["maxPodsConstraint"]["maxPodsPerNode"] == "110"
    assert cluster["initialNodeCount"] == 3


def test_json_null_is_unset_and_int32_may_be_a_string(sandbox):
    body = {
        "cluster": {
            "name": "dask",
            "initialNodeCount": "2",
            "description": None,
            "network": None,
            "nodeConfig": {"machineType": "n1-standard-1", "diskSizeGb": None},
        }
    }
    response = sandbox.call("POST", ZONE, "/clusters", json=body)
    assert response.status_code == 200, response.text
    sandbox.wait_done(response.json(), ZONE)
    cluster = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert "description" not in cluster
    assert cluster["network"] == "default"
    assert cluster["nodeConfig"]["machineType"] == "n1-standard-1"
    assert cluster["nodeConfig"]["diskSizeGb"] == 100
    assert cluster["currentNodeCount"] == 2


@pytest.mark.parametrize("count", [None, 0, -1])
def test_initial_node_count_must_be_positive(sandbox, count):
    response = sandbox.call(
        "POST", ZONE, "/clusters", json={"cluster": {"name": "dask", "initialNodeCount": count}}
    )
    assert response.status_code == 400
    assert error_of(response) == {
        "code": 400,
        "message": "Cluster.initial_node_count must be greater than zero.",
        "status": "INVALID_ARGUMENT",
    }
    assert sandbox.call("GET", ZONE, "/clusters").json() == {}


@pytest.mark.parametrize(
    "body",
    [
        {"cluster": {"name": "Dask_1", "initialNodeCount": 1}},
        {"cluster": {"initialNodeCount": 1}},
        {"cluster": {"name": "dask", "initialNodeCount": "many"}},
        {"cluster": {"name": "dask", "initialNodeCount": 1}, "bogus": 1},
        {"cluster": {"name": "dask", "nodePools": "default-pool"}},
        {"cluster": {"name": "dask", "nodePools": [{"name": "p", "config": "big"}]}},
        {"cluster": {"name": "dask", "initialNodeCount": 1, "nodeConfig": ["n1"]}},
        {"cluster": {"name": "dask", "initialNodeCount": 1, "locations": ["mars-1"]}},
        {},
    ],
)
def test_invalid_create_requests_are_invalid_argument(sandbox, body):
    response = sandbox.call("POST", ZONE, "/clusters", json=body)
    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"
    assert sandbox.call("GET", ZONE, "/clusters").json() == {}
    assert sandbox.backend.calls == []


def test_unknown_location_is_invalid_argument(sandbox):
    response = sandbox.call("GET", "nowhere", "/clusters")
    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


def test_missing_cluster_is_404_in_google_format(sandbox):
    response = sandbox.call("GET", ZONE, "/clusters/absent")
    assert response.status_code == 404
    error = error_of(response)
    assert error["status"] == "NOT_FOUND" and error["code"] == 404
    assert "clusters/absent" in error["message"]
    assert sandbox.call("DELETE", ZONE, "/clusters/absent").status_code == 404
    assert sandbox.call("GET", ZONE, "/clusters/absent/nodePools").status_code == 404


def test_duplicate_cluster_is_409(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    response = sandbox.call(
        "POST", ZONE, "/clusters", json={"cluster": {"name": "dask", "initialNodeCount": 1}}
    )
    assert response.status_code == 409
    assert error_of(response)["status"] == "ALREADY_EXISTS"


def test_zones_and_locations_routes_see_the_same_cluster(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    by_zone = sandbox.call("GET", ZONE, "/clusters/dask", kind="zones").json()
    by_location = sandbox.call("GET", ZONE, "/clusters/dask").json()
    assert by_zone == by_location
    pools = sandbox.call("GET", ZONE, "/clusters/dask/nodePools", kind="zones").json()
    assert [p["name"] for p in pools["nodePools"]] == ["default-pool"]
    listed = sandbox.call("GET", "-", "/clusters").json()
    assert [c["name"] for c in listed["clusters"]] == ["dask"]


def test_create_through_zones_route(sandbox):
    response = sandbox.call(
        "POST",
        "europe-west1-b",
        "/clusters",
        kind="zones",
        json={
            "projectId": PROJECT,
            "zone": "europe-west1-b",
            "cluster": {"name": "z", "initialNodeCount": 1},
        },
    )
    assert response.status_code == 200, response.text
    op = response.json()
    assert op["selfLink"].startswith(f"{GKE}/projects/{PROJECT}/zones/europe-west1-b/operations/")
    sandbox.wait_done(op, "europe-west1-b")
    assert sandbox.call("GET", "europe-west1-b", "/clusters/z", kind="zones").status_code == 200


def test_regional_cluster_spreads_pools_over_three_zones(sandbox):
    sandbox.create_cluster("us-central1", "regional", nodes=2)
    cluster = sandbox.call("GET", "us-central1", "/clusters/regional").json()
    assert (
        cluster["selfLink"] == f"{GKE}/projects/{PROJECT}/locations/us-central1/clusters/regional"
    )
    assert cluster["locations"] == ["us-central1-a", "us-central1-b", "us-central1-c"]
    assert cluster["currentNodeCount"] == 6
    assert len(cluster["nodePools"][0]["instanceGroupUrls"]) == 3


def test_create_with_explicit_node_pools(sandbox):
    body = {
        "cluster": {
            "name": "pools",
            "nodePools": [
                {
                    "name": "workers",
                    "initialNodeCount": 4,
                    "config": {"machineType": "n1-highmem-2"},
                },
                {"name": "system", "initialNodeCount": 1},
            ],
        }
    }
    response = sandbox.call("POST", ZONE, "/clusters", json=body)
    assert response.status_code == 200, response.text
    sandbox.wait_done(response.json(), ZONE)
    cluster = sandbox.call("GET", ZONE, "/clusters/pools").json()
    assert [p["name"] for p in cluster["nodePools"]] == ["workers", "system"]
    assert cluster["currentNodeCount"] == 5
    backend_pools = sandbox.backend.clusters[f"{PROJECT}.{ZONE}.pools"]
    assert backend_pools["workers"] == {"count": 4, "machine_type": "n1-highmem-2"}


def test_missing_or_wrong_token_is_401_unauthenticated_as_google_answers(sandbox):
    no_token = sandbox.session.get(sandbox.url(ZONE, "/clusters"), headers={"Authorization": ""})
    wrong = sandbox.session.get(
        sandbox.url(ZONE, "/clusters"), headers={"Authorization": "Bearer nope"}
    )
    for response in (no_token, wrong):
        assert response.status_code == 401
        assert error_of(response)["status"] == "UNAUTHENTICATED"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_update_is_refused_with_invalid_argument(sandbox):
    sandbox.create_cluster(ZONE, "dask")
    response = sandbox.call("PUT", ZONE, "/clusters/dask", json={"cluster": {"name": "dask"}})
    assert response.status_code == 400
    assert 'Unknown name "cluster"' in error_of(response)["message"]


def test_unknown_url_is_404(sandbox):
    response = sandbox.call("GET", ZONE, "/widgets")
    assert response.status_code == 404
    assert error_of(response)["status"] == "NOT_FOUND"
