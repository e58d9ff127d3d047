"""Fixtures of the upgrade scenario's verifiers, and the diagnostics every scenario shares."""

from __future__ import annotations

import pytest

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
def upgrade_run(admin):
    """`upgrade_run(extra_vars, label)`: --tags upgrade; returns the run and its GKE calls."""

    def run(extra_vars: dict, label: str):
        admin.clear_requests()
        result = harness.run_playbook(
            "deploy.yml",
            tags="upgrade",
            extra_vars=extra_vars,
            label=label,
            timeout=UPGRADE_TIMEOUT,
        )
        return result, admin.requests()

    return run
