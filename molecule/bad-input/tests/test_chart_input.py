"""Bad chart values and exposure against a live release: each run of deploy.yml fails
naming the variable, with no write call to the GKE API, no Kubernetes object created,
changed or deleted, and no Helm revision added.

The release is deployed once (valid scenario variables) before the table runs; a
fresh release name shows the same for a first install.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import dynamic

from tests.integration import harness

DEPLOY_TIMEOUT = 600  # seconds
RUN_TIMEOUT = 300
# Every kind of object the chart renders, and Helm's release records (Secrets).
RELEASE_KINDS = [
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
]
MANY_RANGES = [f"10.{i // 256}.{i % 256}.0/24" for i in range(5001)]

# (extra variables, what the failure must say)
BAD_CHART_INPUTS = [
    *harness.load_cases(Path(__file__).with_name("bad_chart_inputs.yml"), "vars", "message"),
    # Built here: a list of 5001 ranges has no place in the data file.
    pytest.param(
        {"dask_chart_allowed_source_ranges": MANY_RANGES},
        "5001 ranges are more than the 5000 a Google Cloud firewall rule accepts",
        id="too-many-ranges",
    ),
]


class LiveRelease:
    """The release deployed once for the table, and what a bad run must leave as it is."""

    def __init__(self, sandbox, kubeconfig, release, namespace):
        self.sandbox, self.kubeconfig = sandbox, kubeconfig
        self.release, self.namespace = release, namespace
        self.api = dynamic.DynamicClient(harness.kube_client(kubeconfig))

    def helm_entry(self, release=None, namespace=None) -> dict:
        return harness.helm_release(
            self.sandbox, self.kubeconfig, release or self.release, namespace or self.namespace
        )

    def snapshot(self, namespace=None) -> dict:
        """Every object a write could touch: the release's kinds in the namespace (each by
        uid and resourceVersion), and the names of the namespaces."""
        objects = {}
        for api_version, kind in RELEASE_KINDS:
            resource = self.api.resources.get(api_version=api_version, kind=kind)
            for item in resource.get(namespace=namespace or self.namespace).items:
                objects[kind, item.metadata.name] = (
                    item.metadata.uid,
                    item.metadata.resourceVersion,
                )
        namespaces = self.api.resources.get(api_version="v1", kind="Namespace").get().items
        objects["namespaces"] = sorted(item.metadata.name for item in namespaces)
        return objects


@pytest.fixture(scope="module")
def live(sandbox, kubeconfig, release, namespace) -> LiveRelease:
    """Deploy once with the scenario's (valid) variables."""
    run = harness.deploy(label="deploy-live-release", timeout=DEPLOY_TIMEOUT)
    assert run.returncode == 0, run.describe()
    live = LiveRelease(sandbox, kubeconfig, release, namespace)
    assert live.helm_entry().get("status") == "deployed", f"no deployed release {release}"
    return live


def write_calls(admin) -> list[dict]:
    return [entry for entry in admin.requests() if entry.get("method") != "GET"]


@pytest.mark.parametrize(("bad_vars", "message"), BAD_CHART_INPUTS)
def test_bad_chart_input_changes_nothing(admin, live, bad_vars, message, request):
    before, revision = live.snapshot(), live.helm_entry()["revision"]
    admin.clear_requests()
    run = harness.deploy(extra_vars=bad_vars, label=request.node.callspec.id, timeout=RUN_TIMEOUT)
    assert run.returncode != 0, f"accepted {str(bad_vars)[:200]}:{run.describe()}"
    failure = " ".join(run.failure().split())  # the YAML callback folds long messages
    assert message in failure, f"the failure does not say {message!r}:{run.describe()}"
    writes = write_calls(admin)
    assert writes == [], f"GKE API written despite bad input:\n{harness.describe_requests(writes)}"
    assert live.snapshot() == before, "a Kubernetes object was created, changed or deleted"
    entry = live.helm_entry()
    assert (entry["revision"], entry["status"]) == (revision, "deployed"), "a revision was added"


def test_a_fresh_release_exposed_through_values_alone_is_never_created(admin, live):
    # The first of issue 11's runs: no ranges, no opt-in, a LoadBalancer asked for in the
    # values, on a release (and namespace) that does not exist yet.
    before = live.snapshot("fresh")
    admin.clear_requests()
    run = harness.deploy(
        extra_vars={
            "dask_chart_release": "fresh",
            "dask_chart_namespace": "fresh",
            "dask_chart_allowed_source_ranges": [],
            "dask_chart_values": {"scheduler": {"serviceType": "LoadBalancer"}},
        },
        label="fresh-release-load-balancer-via-values",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode != 0, run.describe()
    assert "dask_chart_values.scheduler.serviceType" in " ".join(run.failure().split())
    assert write_calls(admin) == []
    after = live.snapshot("fresh")
    assert after == before
    assert "fresh" not in after["namespaces"]
    assert live.helm_entry("fresh", "fresh") == {}
