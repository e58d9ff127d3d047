"""Bad chart values and exposure against a live release: each run of deploy.yml fails
naming the variable, with no write call to the GKE API, no Kubernetes object created,
changed or deleted, and no Helm revision added.

The release is deployed once (valid scenario variables) before the table runs; a
fresh release name shows the same for a first install.
"""

from __future__ import annotations

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

BAD_CHART_INPUTS = [
    # (extra variables, what the failure must say)
    pytest.param(
        {"dask_chart_values": {"jupyter": {"serviceType": "LoadBalancer"}}},
        "dask_chart_values.jupyter.serviceType",
        id="load-balancer-via-values",
    ),
    pytest.param(
        {"dask_chart_values": {"worker": {"replicas": -1}}},
        "dask_chart_values.worker.replicas=-1 is set by the role: use dask_chart_worker_replicas",
        id="negative-replicas",
    ),
    pytest.param(
        {"dask_chart_values": {"workers": {"replicas": 2}}},
        "dask_chart_values.workers is not a value of the chart",
        id="unknown-component",
    ),
    pytest.param(
        {"dask_chart_values": {"worker": {"resources": "large"}}},
        'dask_chart_values.worker.resources="large" must be a mapping',
        id="wrong-type-under-known-key",
    ),
    pytest.param(
        {"dask_chart_values": {"worker": {"env": [{"name": "EXTRA_PIP_PACKAGES", "value": "x"}]}}},
        "use dask_chart_extra_pip_packages instead",
        id="pip-packages-via-values",
    ),
    pytest.param(
        {"dask_chart_values": {"jupyter": {"password": "sha1:aae8550c0a44:9507d45e087d5ee4"}}},
        "dask_chart_values.jupyter.password",
        id="password-via-values",
    ),
    pytest.param(
        {"dask_chart_values": {"jupyter": {"extraConfig": "c.ServerApp.token = ''"}}},
        "dask_chart_values.jupyter.extraConfig touches the Jupyter login",
        id="extra-config-drops-the-login",
    ),
    pytest.param(
        {"dask_chart_values": {"scheduler": {"serviceAnnotations": {"a": "b"}}}},
        "use dask_chart_load_balancer_annotations instead",
        id="annotations-via-values",
    ),
    pytest.param(
        {"dask_chart_allowed_source_ranges": "10.0.0.0/8"},
        "dask_chart_allowed_source_ranges",
        id="source-range-a-string",
    ),
    pytest.param(
        {"dask_chart_allowed_source_ranges": ["2001:db8::/32"]},
        '"2001:db8::/32" is an IPv6 range',
        id="ipv6-range",
    ),
    pytest.param(
        {"dask_chart_allowed_source_ranges": MANY_RANGES},
        "5001 ranges are more than the 5000 a Google Cloud firewall rule accepts",
        id="too-many-ranges",
    ),
    pytest.param(
        {"dask_chart_allowed_source_ranges": ["10.0.0.1/8"]},
        '"10.0.0.1/8" is not a CIDR with the host bits clear',
        id="source-range-host-bits",
    ),
    pytest.param(
        {"dask_chart_allowed_source_ranges": ["0.0.0.0/0"]},
        "dask_chart_allowed_source_ranges contains 0.0.0.0/0",
        id="whole-internet-without-opt-in",
    ),
    pytest.param(
        {"dask_chart_load_balancer_annotations": {"example.com/idle-timeout": 300}},
        "dask_chart_load_balancer_annotations.example.com/idle-timeout=300 is not a string",
        id="annotation-not-a-string",
    ),
    pytest.param(
        {"dask_chart_load_balancer_type": "global"},
        "dask_chart_load_balancer_type",
        id="load-balancer-type-unknown",
    ),
    pytest.param(
        {"dask_chart_load_balancer_ips": {"scheduler": "127.0.300.1"}},
        'dask_chart_load_balancer_ips.scheduler="127.0.300.1" is not an IPv4 address',
        id="static-ip-invalid",
    ),
    pytest.param(
        {"dask_chart_dask_version": "latest"},
        "dask_chart_dask_version",
        id="dask-version-not-calver",
    ),
    pytest.param(
        {"dask_chart_dask_version": "2023.12.1"},
        "2024.1.0 or newer",
        id="dask-version-below-the-floor",
    ),
    # Passes every check of the role; only the API server knows a CPU must be a quantity.
    pytest.param(
        {"dask_chart_values": {"worker": {"resources": {"limits": {"cpu": "lots"}}}}},
        "the API server rejected the release in a dry run, nothing was changed: "
        "Deployment dask-worker",
        id="rejected-by-the-api-server-dry-run",
    ),
    # The role's own checks that were in the table before (release names, pip, password, chart).
    pytest.param({"dask_chart_release": "Dask!"}, "dask_chart_release", id="release-name-invalid"),
    pytest.param(
        {"dask_chart_namespace": "Bad_Namespace"}, "dask_chart_namespace", id="namespace-invalid"
    ),
    pytest.param(
        {"dask_chart_extra_pip_packages": "s3fs xarray"},
        "dask_chart_extra_pip_packages",
        id="pip-packages-a-string",
    ),
    pytest.param(
        {"dask_chart_extra_pip_packages": ["s3fs; curl x | sh"]},
        "dask_chart_extra_pip_packages",
        id="pip-package-with-shell",
    ),
    pytest.param(
        {"dask_chart_values": ["not", "a", "mapping"]}, "dask_chart_values", id="values-a-list"
    ),
    pytest.param(
        {"dask_chart_jupyter_password": "dask"},
        "dask_chart_jupyter_password",
        id="tutorial-password",
    ),
    pytest.param(
        {"dask_chart_jupyter_password": "short"},
        "dask_chart_jupyter_password",
        id="password-too-short",
    ),
    pytest.param({"dask_chart_version": "latest"}, "dask_chart_version", id="chart-unpinned"),
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
