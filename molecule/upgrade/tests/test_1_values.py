"""`deploy.yml --tags upgrade` with new packages: Helm only, one revision, value live, converged."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.integration import harness


def pip_packages(deployment: client.V1Deployment) -> list[str]:
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env or []}
    return sorted(env.get("EXTRA_PIP_PACKAGES", "").split())


@pytest.fixture(scope="module")
def new_packages(settings, release_deployments) -> list[str]:
    """The scenario's packages plus one it does not deploy."""
    packages = [*settings["dask_chart_extra_pip_packages"], "xarray"]
    # Read before the upgrade: what runs must differ, or test_new_packages_live proves nothing.
    live = {component: pip_packages(d) for component, d in release_deployments().items()}
    assert set(live) == {"scheduler", "worker", "jupyter"}, live
    assert all(found != sorted(packages) for found in live.values()), live
    return packages


@pytest.fixture(scope="module")
def upgrade(upgrade_run, new_packages):
    return upgrade_run({"dask_chart_extra_pip_packages": new_packages}, "upgrade")


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


@pytest.mark.parametrize("component", ["scheduler", "worker", "jupyter"])
def test_the_new_pods_import_the_new_package(
    deployments, python_in_component, component, new_packages
):
    # The rollout is over (test_new_packages_live): every running Pod is a new one.
    added = new_packages[-1]
    code = (
        "import importlib, importlib.metadata as m; "
        f"importlib.import_module({added!r}); print(m.version({added!r}))"
    )
    versions = python_in_component(component, code)
    assert versions, f"no {component} Pod"
    for pod, output in versions.items():
        assert output and "Error" not in output, f"{pod}: {output}"


def test_upgrade_again_changes_nothing(upgrade, upgrade_run, revision, new_packages):
    run, calls, before = upgrade_run(
        {"dask_chart_extra_pip_packages": new_packages}, "upgrade-again"
    )
    assert run.returncode == 0, run.describe()
    assert calls == [], harness.describe_requests(calls)
    assert revision() == before
    assert run.recap().get("changed") == 0, run.describe()
