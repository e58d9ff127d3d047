"""Fixtures of the upgrade scenario's verifiers, and the diagnostics every scenario shares."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.integration import harness

pytest_plugins = ["tests.integration.fixtures"]

UPGRADE_TIMEOUT = 600  # seconds


@pytest.fixture(scope="session")
def revision(sandbox, kubeconfig, release, namespace):
    """`revision()`: the release's current Helm revision."""

    def current() -> int:
        entry = harness.helm_release(sandbox, kubeconfig, release, namespace)
        assert entry, f"no Helm release {release} in {namespace}"
        return int(entry["revision"])

    return current


@pytest.fixture(scope="session")
def upgrade_run(admin, revision):
    """`upgrade_run(extra_vars, label)`: --tags upgrade; returns the run, the GKE calls it
    made and the release's revision before it."""

    def run(extra_vars: dict, label: str):
        before = revision()
        admin.clear_requests()
        result = harness.run_playbook(
            "deploy.yml",
            tags="upgrade",
            extra_vars=extra_vars,
            label=label,
            timeout=UPGRADE_TIMEOUT,
        )
        return result, admin.requests(), before

    return run


@pytest.fixture(scope="session")
def release_deployments(kubeconfig, namespace, release):
    """`release_deployments()`: the release's Deployments now, by chart component."""
    apps = client.AppsV1Api(harness.kube_client(kubeconfig))

    def current() -> dict[str, client.V1Deployment]:
        items = apps.list_namespaced_deployment(
            namespace, label_selector=f"release={release}"
        ).items
        return {d.metadata.labels["component"]: d for d in items}

    return current


@pytest.fixture(scope="module")
def deployments(upgrade, release_deployments) -> dict[str, client.V1Deployment]:
    """The release's Deployments after the upgrade of the test module (its `upgrade`
    fixture), by chart component."""
    return release_deployments()


@pytest.fixture(scope="session")
def python_in_component(kubeconfig, namespace, release):
    """`python_in_component(component, code)`: what `python -c code` prints in each running
    Pod of a chart component (scheduler, worker, jupyter), by Pod name."""
    core = client.CoreV1Api(harness.kube_client(kubeconfig))

    def run(component: str, code: str) -> dict[str, str]:
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"release={release},component={component}"
        ).items
        running = [
            pod.metadata.name
            for pod in pods
            if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None
        ]
        assert running, f"no running {component} Pod"
        return {
            name: harness.python_in_pod(core, name, namespace, code).strip() for name in running
        }

    return run
