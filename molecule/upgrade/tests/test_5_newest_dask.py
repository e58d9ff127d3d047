"""The newest supported Dask through the published chart's templates: `--tags upgrade` to
NEWEST rolls every component to it (the chart's `dask-scheduler` / `dask-worker`
commands rewritten at render time), and a computation spread over every worker runs.
The control node's client is the default version, so the computation's client runs in
the scheduler's Pod, next to the scheduler it talks to.
"""

from __future__ import annotations

import json

import pytest

# The newest release the role supports (issue 13); the scenario's images of it are built
# (cached) and imported into the real node as a registry would serve them.
NEWEST = "2026.8.0"
COMPONENTS = ("scheduler", "worker", "jupyter")

# Runs in the scheduler Pod: one task pinned to each worker, their sum and the versions.
COMPUTE = """
import json, dask, distributed
with distributed.Client("tcp://127.0.0.1:8786", timeout=60) as c:
    workers = sorted(c.scheduler_info()["workers"])
    futures = [c.submit(pow, i, 2, workers=[w], pure=False) for i, w in enumerate(workers, 1)]
    total = sum(c.gather(futures))
    ran_on = sorted(a for holders in c.who_has(futures).values() for a in holders)
    versions = c.get_versions(check=False)
    print(json.dumps({
        "workers": workers, "ran_on": ran_on, "total": total,
        "scheduler": versions["scheduler"]["packages"]["dask"],
        "on_workers": sorted({w["packages"]["dask"] for w in versions["workers"].values()}),
        "client": dask.__version__ + " " + distributed.__version__,
    }))
"""


@pytest.fixture(scope="module")
def newest_upgrade(admin, upgrade_run, real_node):
    assert NEWEST in admin.add_dask_images(NEWEST)
    return upgrade_run({"dask_chart_dask_version": NEWEST}, "newest-dask-upgrade")


def test_the_upgrade_to_the_newest_dask_succeeds(newest_upgrade, revision):
    run, calls, before = newest_upgrade
    assert run.returncode == 0, run.describe()
    assert calls == [], "no GKE call in --tags upgrade"
    assert revision() == before + 1


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_component_runs_the_newest_image(newest_upgrade, release_deployments, component):
    deployment = release_deployments()[component]
    assert deployment.spec.template.spec.containers[0].image.endswith(f":{NEWEST}")
    assert deployment.status.updated_replicas == deployment.spec.replicas


def test_a_computation_spreads_over_every_worker(newest_upgrade, python_in_component, settings):
    (output,) = python_in_component("scheduler", COMPUTE).values()
    result = json.loads(output.strip().splitlines()[-1])
    replicas = int(settings["dask_chart_worker_replicas"])
    assert len(result["workers"]) == replicas
    assert result["ran_on"] == result["workers"], "a worker computed nothing"
    assert result["total"] == sum(i * i for i in range(1, replicas + 1))
    assert (result["scheduler"], result["on_workers"]) == (NEWEST, [NEWEST])
    assert result["client"] == f"{NEWEST} {NEWEST}"


def test_the_endpoints_file_reports_the_newest_version(newest_upgrade, endpoints_file):
    versions = json.loads(endpoints_file.read_text())["versions"]
    assert (versions["configured"], versions["scheduler"], versions["workers"]) == (
        NEWEST,
        NEWEST,
        [NEWEST],
    )
