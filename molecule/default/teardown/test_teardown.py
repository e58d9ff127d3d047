"""cleanup.yml after the deployment: ordered teardown, nothing left behind, re-runnable.

Molecule's cleanup stage runs this (molecule/shared/cleanup.yml), after the verifier.
"""

from __future__ import annotations

import re
import threading

import pytest
from kubernetes import client, watch

from tests.integration import harness

CLEANUP_TIMEOUT = 600  # seconds; the sandbox deletes a cluster in seconds


class ServiceDeletionWatch(threading.Thread):
    """Records the Services deleted in a namespace while the cluster still answers."""

    def __init__(self, core: client.CoreV1Api, namespace: str):
        super().__init__(name=f"watch-services-{namespace}", daemon=True)
        self._core = core
        self._namespace = namespace
        listed = core.list_namespaced_service(namespace)
        self.initial = {s.metadata.name: s.spec.type for s in listed.items}
        self._resource_version = listed.metadata.resource_version
        self._watch = watch.Watch()
        self.deleted: list[str] = []
        self.ended_by: str = "still watching"

    def run(self) -> None:
        try:
            for event in self._watch.stream(
                self._core.list_namespaced_service,
                self._namespace,
                resource_version=self._resource_version,
                timeout_seconds=CLEANUP_TIMEOUT,
            ):
                if event["type"] == "DELETED":
                    self.deleted.append(event["object"].metadata.name)
            self.ended_by = "watch timeout"
        except Exception as exc:  # the API server going away ends the watch, any error
            self.ended_by = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._watch.stop()
        self.join(timeout=30)


@pytest.fixture(scope="module")
def teardown(admin, kubeconfig, namespace, cluster_name):
    """Run cleanup.yml once, watching the release's Services while it runs."""
    core = client.CoreV1Api(harness.kube_client(kubeconfig))
    services = ServiceDeletionWatch(core, namespace)
    services.start()
    admin.clear_requests()
    run = harness.cleanup(cluster_name, label="cleanup", timeout=CLEANUP_TIMEOUT)
    services.stop()
    return run, services, admin.requests()


def test_cleanup_succeeds(teardown):
    run, _, _ = teardown
    assert run.returncode == 0, run.describe()


def test_load_balancers_deleted_before_the_cluster(teardown):
    _, services, _ = teardown
    load_balancers = sorted(n for n, kind in services.initial.items() if kind == "LoadBalancer")
    assert load_balancers, f"no LoadBalancer Service before cleanup: {services.initial}"
    missing = [name for name in load_balancers if name not in services.deleted]
    assert not missing, (
        f"LoadBalancer Services not deleted while the cluster was up: {missing} "
        f"(watch ended by {services.ended_by})"
    )


def test_cluster_deleted_in_the_emulator(teardown, admin, cluster_name):
    _, _, requests = teardown
    assert admin.cluster(cluster_name) is None, admin.cluster(cluster_name)
    deletes = [r for r in requests if r["method"] == "DELETE" and r["status"] < 300]
    assert any(r["path"].endswith(f"/clusters/{cluster_name}") for r in deletes), (
        harness.describe_requests(requests)
    )


def test_no_cluster_process_left(teardown, sandbox):
    # Every process of a KWOK cluster names its directory under the sandbox's kwok/.
    kwok_dir = harness.sandbox_dir() / "kwok"
    left = harness.processes(re.escape(f"{kwok_dir}/"))
    assert not left, f"processes left after cleanup: {left}"


def test_no_playbook_process_left(teardown):
    run, _, _ = teardown
    assert run.lingering() == [], "processes of the cleanup run outlived it"


def test_kubeconfig_removed(teardown, kubeconfig):
    assert not kubeconfig.exists(), f"{kubeconfig} still exists after cleanup"


def test_cleanup_again_succeeds_without_deleting(teardown, admin, cluster_name):
    admin.clear_requests()
    run = harness.cleanup(cluster_name, label="cleanup-again", timeout=CLEANUP_TIMEOUT)
    assert run.returncode == 0, run.describe()
    calls = admin.requests()
    assert not [r for r in calls if r["method"] == "DELETE"], harness.describe_requests(calls)
