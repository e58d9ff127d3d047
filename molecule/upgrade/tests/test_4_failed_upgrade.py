"""An upgrade whose image cannot be pulled: the rollout wait names the Pod's pull error
within seconds (not a timeout), the role rolls the release back to the revision that
served before, and the release serves with its old image again.

The image's registry is 127.0.0.1:9 in the real node's own network namespace: the pull
is refused there at once, nothing leaves the machine.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.integration import harness

DEFAULTS = harness.REPO_ROOT / "roles/dask_chart/defaults/main.yml"
UNPULLABLE = "127.0.0.1:9/dask/dask"
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff")


# Real pods only: skipped, with the reason, in a sandbox without a real node.
pytestmark = pytest.mark.usefixtures("real_node")


@pytest.fixture(scope="module")
def failed_upgrade(upgrade_run, release_deployments):
    # The version test_3 upgraded to, so that only the image changes.
    version = str(harness.load_yaml(DEFAULTS)["dask_chart_dask_version"])
    image_before = release_deployments()["worker"].spec.template.spec.containers[0].image
    started = time.monotonic()
    run, calls, before = upgrade_run(
        {"dask_chart_dask_version": version, "dask_chart_worker_image": UNPULLABLE},
        "upgrade-unpullable-image",
    )
    return run, calls, before, image_before, time.monotonic() - started


def test_the_failure_names_the_pull_error_long_before_the_timeout(failed_upgrade, settings):
    run, _, _, _, seconds = failed_upgrade
    assert run.returncode != 0, run.describe()
    failure = " ".join(run.failure().split())
    assert any(reason in failure for reason in PULL_ERRORS), run.describe()
    assert f"{UNPULLABLE}:" in failure, "the failure does not name the image"
    assert "cannot start its Pods" in failure
    # wait_for_rollout's own time (its result's `elapsed`), and the whole run's.
    waited = re.search(r"^\s+elapsed: ([0-9.]+)$", run.output, re.MULTILINE)
    assert waited, f"the rollout wait reported no elapsed time:{run.describe()}"
    bound = int(settings["dask_chart_ready_timeout"])
    assert float(waited.group(1)) < bound / 3, "the wait did not stop at the pull error"
    assert seconds < bound, "the run waited for the timeout"


def test_the_release_is_rolled_back_to_the_revision_that_served(
    failed_upgrade, sandbox, kubeconfig, release, namespace
):
    run, calls, before, _, _ = failed_upgrade
    failure = " ".join(run.failure().split())
    assert f"was rolled back to revision {before}, which serves again" in failure, run.describe()
    assert calls == [], "the upgrade called the GKE API"
    entry = harness.helm_release(sandbox, kubeconfig, release, namespace)
    # The failed revision, then the rollback as a revision of its own (as helm rollback does).
    assert (int(entry["revision"]), entry["status"]) == (before + 2, "deployed")


def test_the_workers_run_their_old_image_again(failed_upgrade, release_deployments):
    _, _, _, image_before, _ = failed_upgrade
    worker = release_deployments()["worker"]
    assert worker.spec.template.spec.containers[0].image == image_before
