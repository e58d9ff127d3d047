"""`deploy.yml --tags upgrade` after a deploy: Helm only, one revision, value live, converged."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.integration import harness

UPGRADE_TIMEOUT = 600  # seconds


def release_deployments(kubeconfig, namespace, release) -> dict[str, client.V1Deployment]:
    items = (
        client.AppsV1Api(harness.kube_client(kubeconfig))
        .list_namespaced_deployment(namespace, label_selector=f"release={release}")
        .items
    )
    return {d.metadata.labels.get("component"): d for d in items}


def pip_packages(deployment: client.V1Deployment) -> list[str]:
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env or []}
    return sorted(env.get("EXTRA_PIP_PACKAGES", "").split())


@pytest.fixture(scope="module")
def new_packages(settings, kubeconfig, namespace, release) -> list[str]:
    packages = [*settings["dask_chart_extra_pip_packages"], "xarray"]
    # Read before the upgrade: what runs must differ, or test_new_packages_live proves nothing.
    deployed = release_deployments(kubeconfig, namespace, release)
    live = {component: pip_packages(d) for component, d in deployed.items()}
    assert set(live) == {"scheduler", "worker", "jupyter"}, live
    assert all(found != sorted(packages) for found in live.values()), live
    return packages


@pytest.fixture(scope="module")
def revision(sandbox, kubeconfig, release, namespace):
    """`revision()`: the release's current Helm revision."""

    def current() -> int:
        entry = harness.helm_release(sandbox, kubeconfig, release, namespace)
        assert entry, f"no Helm release {release} in {namespace}"
        return int(entry["revision"])

    return current


def run_upgrade(admin, packages: list[str], label: str):
    """Run --tags upgrade with `packages`; return the run and the GKE calls it made."""
    admin.clear_requests()
    run = harness.run_playbook(
        "deploy.yml",
        tags="upgrade",
        extra_vars={"dask_chart_extra_pip_packages": packages},
        label=label,
        timeout=UPGRADE_TIMEOUT,
    )
    return run, admin.requests()


@pytest.fixture(scope="module")
def upgrade(admin, revision, new_packages):
    before = revision()
    run, calls = run_upgrade(admin, new_packages, "upgrade")
    return run, calls, before


@pytest.fixture(scope="module")
def deployments(upgrade, kubeconfig, namespace, release) -> dict[str, client.V1Deployment]:
    return release_deployments(kubeconfig, namespace, release)


def test_upgrade_run_succeeds(upgrade):
    run, _, _ = upgrade
    assert run.returncode == 0, run.describe()


def test_upgrade_makes_no_gke_call(upgrade):
    run, calls, _ = upgrade
    assert calls == [], f"GKE API calls during --tags upgrade:\n{harness.describe_requests(calls)}"
    assert run.recap(), f"the run printed no PLAY RECAP: {run.describe()}"


def test_revision_up_by_exactly_one(upgrade, revision):
    _, _, before = upgrade
    assert revision() == before + 1


@pytest.mark.parametrize("component", ["scheduler", "worker", "jupyter"])
def test_new_packages_live(deployments, component, new_packages):
    deployment = deployments[component]
    assert pip_packages(deployment) == sorted(new_packages)
    status = deployment.status
    assert status.observed_generation >= deployment.metadata.generation
    assert status.updated_replicas == deployment.spec.replicas, "rollout not finished"


def test_upgrade_again_changes_nothing(upgrade, admin, revision, new_packages):
    before = revision()
    run, calls = run_upgrade(admin, new_packages, "upgrade-again")
    assert run.returncode == 0, run.describe()
    assert calls == [], harness.describe_requests(calls)
    assert revision() == before
    assert run.recap().get("changed") == 0, run.describe()
