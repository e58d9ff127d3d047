"""serviceusage, compute and iam reads, and what GKE itself checks in the project on create."""

import time

import pytest

from sandbox.emulator.daemon import SANDBOX_PROJECT

ZONE = "us-central1-a"
REGION = "us-central1"
COMPUTE = f"https://compute.googleapis.com/compute/v1/projects/{SANDBOX_PROJECT}"
SERVICES = f"https://serviceusage.googleapis.com/v1/projects/{SANDBOX_PROJECT}/services"
CLUSTERS = f"https://container.googleapis.com/v1/projects/{SANDBOX_PROJECT}/locations"


def batch_get(sandbox, *services):
    names = [f"projects/{SANDBOX_PROJECT}/services/{s}" for s in services]
    return sandbox.google("GET", f"{SERVICES}:batchGet", params={"names": names})


def wait_done(sandbox, operation: dict) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        polled = sandbox.google("GET", f"{CLUSTERS}/{ZONE}/operations/{operation['name']}").json()
        if polled["status"] == "DONE":
            return polled
        time.sleep(0.02)
    raise AssertionError(f"{operation['name']} not DONE after 10 s")


def create(sandbox, location=ZONE, nodes=1, **config):
    body = {"cluster": {"name": "dask", "initialNodeCount": nodes, "nodeConfig": config}}
    return sandbox.google("POST", f"{CLUSTERS}/{location}/clusters", json=body)


def test_a_healthy_project_answers_every_prerequisite_read(sandbox):
    states = batch_get(sandbox, "container.googleapis.com", "compute.googleapis.com").json()
    assert [s["state"] for s in states["services"]] == ["ENABLED", "ENABLED"]
    project = sandbox.google("GET", COMPUTE).json()
    assert project["defaultServiceAccount"].endswith("-compute@developer.gserviceaccount.com")
    region = sandbox.google("GET", f"{COMPUTE}/regions/{REGION}").json()
    assert [z.rsplit("/", 1)[1] for z in region["zones"]][:3] == [f"{REGION}-{s}" for s in "abc"]
    assert {q["metric"] for q in region["quotas"]} >= {"CPUS", "SSD_TOTAL_GB", "IN_USE_ADDRESSES"}
    machine = sandbox.google("GET", f"{COMPUTE}/zones/{ZONE}/machineTypes/n1-standard-1").json()
    assert machine["guestCpus"] == 1
    networks = sandbox.google(
        "GET", f"{COMPUTE}/global/networks", params={"filter": "name = default"}
    )
    assert [n["name"] for n in networks.json()["items"]] == ["default"]
    subnets = sandbox.google("GET", f"{COMPUTE}/regions/{REGION}/subnetworks")
    assert [s["name"] for s in subnets.json()["items"]] == ["default"]
    account = project["defaultServiceAccount"]
    granted = sandbox.google(
        "POST",
        f"https://iam.googleapis.com/v1/projects/-/serviceAccounts/{account}:testIamPermissions",
        json={"permissions": ["iam.serviceAccounts.actAs"]},
    )
    assert granted.json() == {"permissions": ["iam.serviceAccounts.actAs"]}
    hosts = {e["host"] for e in sandbox.plain.get(f"{sandbox.admin}/requests?host=*").json()}
    assert hosts == {"serviceusage.googleapis.com", "compute.googleapis.com", "iam.googleapis.com"}
    assert sandbox.requests_log() == [], "GET /requests lists container.googleapis.com only"


def test_unknown_machine_type_is_404_in_compute_format(sandbox):
    answer = sandbox.google("GET", f"{COMPUTE}/zones/{ZONE}/machineTypes/n9-huge")
    assert answer.status_code == 404
    assert answer.json()["error"]["errors"][0]["reason"] == "notFound"


def test_quota_usage_counts_the_clusters_of_the_region(sandbox):
    assert create(sandbox, nodes=2, machineType="n1-standard-4").status_code == 200
    quotas = sandbox.google("GET", f"{COMPUTE}/regions/{REGION}").json()["quotas"]
    usage = {q["metric"]: q["usage"] for q in quotas}
    assert usage["CPUS"] == 8.0
    assert usage["IN_USE_ADDRESSES"] == 2.0
    assert usage["SSD_TOTAL_GB"] == 200.0  # pd-balanced, GKE's default, counts as SSD


@pytest.mark.parametrize(
    ("project_fault", "config", "code", "words"),
    [
        (
            {"disabled_services": ["container.googleapis.com"]},
            {},
            403,
            "Kubernetes Engine API has not been used",
        ),
        (
            {"disabled_services": ["compute.googleapis.com"]},
            {},
            403,
            "Compute Engine API has not been used",
        ),
        ({"missing_networks": ["default"]}, {}, 400, 'Network "default" does not exist.'),
        (
            {"unavailable_machine_types": ["n1-standard-1"]},
            {"machineType": "n1-standard-1"},
            400,
            "does not exist in zone 'us-central1-a'",
        ),
        ({"deny_act_as": True}, {}, 400, "does not have access to service account"),
        (
            {"quota_limits": {"CPUS": 1}},
            {"machineType": "n1-standard-2"},
            403,
            'Insufficient regional quota to satisfy request: resource "CPUS"',
        ),
    ],
)
def test_gke_refuses_a_create_the_project_cannot_hold(sandbox, project_fault, config, code, words):
    sandbox.put_faults({"project": project_fault})
    answer = create(sandbox, **config)
    assert answer.status_code == code, answer.text
    assert words in answer.json()["error"]["message"]
    assert sandbox.backend.calls == []
    assert sandbox.plain.get(f"{sandbox.admin}/state").json()["clusters"] == []


def test_a_disabled_api_reports_service_disabled_in_its_details(sandbox):
    sandbox.put_faults({"project": {"disabled_services": ["compute.googleapis.com"]}})
    answer = sandbox.google("GET", f"{COMPUTE}/regions/{REGION}")
    [detail] = answer.json()["error"]["details"]
    assert detail["reason"] == "SERVICE_DISABLED"
    assert detail["metadata"]["service"] == "compute.googleapis.com"
    assert batch_get(sandbox, "compute.googleapis.com").json()["services"][0]["state"] == "DISABLED"


def test_regional_quota_counts_every_zone(sandbox):
    # 3 per zone in 3 zones: 9 addresses.
    sandbox.put_faults({"project": {"quota_limits": {"IN_USE_ADDRESSES": 8}}})
    answer = create(sandbox, location=REGION, nodes=3)
    assert answer.status_code == 403
    assert "request requires '9.0' and is short '1.0'" in answer.json()["error"]["message"]


def test_node_pool_create_is_checked_too(sandbox):
    operation = create(sandbox).json()
    wait_done(sandbox, operation)
    sandbox.put_faults({"project": {"quota_limits": {"CPUS": 3}}})
    pool = {
        "nodePool": {
            "name": "workers",
            "initialNodeCount": 2,
            "config": {"machineType": "n1-standard-2"},
        }
    }
    answer = sandbox.google("POST", f"{CLUSTERS}/{ZONE}/clusters/dask/nodePools", json=pool)
    assert answer.status_code == 403
    assert "short '3.0'" in answer.json()["error"]["message"]  # 4 wanted, 1 of 3 left
