"""`--tags upgrade` with a new dask_chart_dask_version: the scenario deploys the role's
previous default (2024.1.0) and upgrades it to the current default, which has no
`dask-scheduler` / `dask-worker` any more. Every component is checked on its own:
its Deployment's image and command, its rollout, and the version it reports.
"""

from __future__ import annotations

import json

import pytest

from tests.integration import harness

DEFAULTS = harness.REPO_ROOT / "roles/dask_chart/defaults/main.yml"
COMPONENTS = ("scheduler", "worker", "jupyter")
COMMANDS = {"scheduler": ["dask", "scheduler"], "worker": ["dask", "worker"]}


@pytest.fixture(scope="module")
def new_version(settings) -> str:
    """The role's default Dask version, which the scenario does not deploy."""
    version = str(harness.load_yaml(DEFAULTS)["dask_chart_dask_version"])
    assert version != str(settings["dask_chart_dask_version"]), "the scenario deploys it already"
    return version


@pytest.fixture(scope="module")
def upgrade(upgrade_run, new_version):
    return upgrade_run({"dask_chart_dask_version": new_version}, "dask-version-upgrade")


def test_the_dask_upgrade_is_one_helm_revision_without_gke_calls(upgrade, revision):
    run, calls, before = upgrade
    assert run.returncode == 0, run.describe()
    assert calls == [], harness.describe_requests(calls)
    assert revision() == before + 1


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_component_runs_the_new_image(deployments, component, new_version):
    deployment = deployments[component]
    image = deployment.spec.template.spec.containers[0].image
    assert image.rsplit(":", 1)[1] == new_version
    status = deployment.status
    assert status.observed_generation == deployment.metadata.generation
    assert status.updated_replicas == deployment.spec.replicas, f"{component} not rolled out"
    assert (status.replicas or 0) == deployment.spec.replicas, f"old {component} pods left"


@pytest.mark.parametrize("component", ["scheduler", "worker"])
def test_the_published_charts_commands_are_rewritten(deployments, component):
    args = deployments[component].spec.template.spec.containers[0].args
    assert args[:2] == COMMANDS[component], f"{component} runs {args}"


def test_the_endpoints_file_names_the_new_version(upgrade, endpoints_file, new_version):
    endpoints = json.loads(endpoints_file.read_text())
    assert endpoints["dask_version"] == new_version
    assert endpoints["client_install"] == f'pip install "dask[distributed]=={new_version}"'


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_running_pod_reports_the_new_version(
    deployments, python_in_component, component, new_version
):
    code = "import dask, distributed; print(dask.__version__, distributed.__version__)"
    reported = python_in_component(component, code)
    assert set(reported.values()) == {f"{new_version} {new_version}"}, reported


def test_the_endpoints_file_records_what_the_cluster_reports(
    upgrade, endpoints_file, new_version, settings
):
    versions = json.loads(endpoints_file.read_text())["versions"]
    assert versions["configured"] == new_version
    assert versions["scheduler"] == new_version
    assert versions["workers"] == [new_version]
    assert versions["worker_count"] == int(settings["dask_chart_worker_replicas"])


def test_upgrading_again_changes_nothing(upgrade, upgrade_run, revision, new_version):
    run, calls, before = upgrade_run({"dask_chart_dask_version": new_version}, "dask-version-again")
    assert run.returncode == 0, run.describe()
    assert calls == []
    assert revision() == before
    assert run.recap().get("changed") == 0, run.describe()


def test_a_cluster_running_another_version_fails_the_verify_naming_both(
    upgrade, revision, new_version, settings
):
    # The inventory says the old version while the cluster runs the new one (say, a
    # checkout older than the last upgrade): the verify asks the cluster and refuses.
    configured = str(settings["dask_chart_dask_version"])
    before = revision()
    run = harness.run_playbook(
        "deploy.yml",
        tags="verify",
        extra_vars={"dask_chart_dask_version": configured},
        label="verify-version-mismatch",
        timeout=600,
    )
    assert run.returncode != 0, run.describe()
    failure = " ".join(run.failure().split())
    assert f"dask_chart_dask_version is {configured}" in failure, run.describe()
    assert f"the running scheduler reports Dask {new_version}" in failure
    assert f"report {new_version}" in failure
    assert revision() == before, "the verify changed the release"
