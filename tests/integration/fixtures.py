"""pytest plugin of the molecule verifiers (loaded by each scenario's conftest.py).

Fixtures for the sandbox, its admin API and the scenario's variables, and a report hook
that appends the sandbox diagnostics to every failing test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import harness


@pytest.fixture(scope="session")
def sandbox() -> dict[str, str]:
    """The sandbox variables (env.json)."""
    return harness.sandbox_env()


@pytest.fixture(scope="session")
def admin(sandbox: dict[str, str]) -> harness.AdminApi:
    api = harness.AdminApi(sandbox["SANDBOX_ADMIN_URL"])
    if not api.healthy():
        raise harness.SandboxNotRunning(f"{api.base_url}/healthz does not answer")
    return api


@pytest.fixture(scope="session")
def real_node(admin: harness.AdminApi) -> None:
    """Skip (never pass) a test of real pods when the sandbox has no real node, with why."""
    reason = admin.state().get("realNodeDisabled")
    if reason:
        pytest.skip(f"no real node in this sandbox: {reason}")


@pytest.fixture(scope="session")
def jupyter_password(settings: dict, scenario_vars: dict) -> str:
    """The password the role used: the scenario's own, else the one it generated. Never the
    file alone: an earlier scenario may have left a file of another password."""
    if scenario_vars.get("dask_chart_jupyter_password"):
        return scenario_vars["dask_chart_jupyter_password"]
    path = repo_path(settings["dask_chart_jupyter_password_file"])
    return path.read_text().strip()


# Every variable a verifier reads, resolved once per scenario as the playbooks see it.
SETTINGS = (
    "gke_cluster_name",
    "gke_cluster_node_pool_name",
    "gke_cluster_node_count",
    "gke_cluster_machine_type",
    "gke_cluster_kubeconfig_path",
    "helm_tiller_helm_major",
    "helm_tiller_namespace",
    "helm_tiller_service_account",
    "helm_tiller_image",
    "dask_chart_release",
    "dask_chart_namespace",
    "dask_chart_chart_name",
    "dask_chart_version",
    "dask_chart_dask_version",
    "dask_chart_worker_replicas",
    "dask_chart_extra_pip_packages",
    "dask_chart_allowed_source_ranges",
    "dask_chart_endpoints_file",
    "dask_chart_jupyter_password_file",
    "dask_chart_ready_timeout",
    "dask_chart_smoke_test",
)


@pytest.fixture(scope="session")
def settings(sandbox: dict[str, str]) -> dict:
    """Role variables as the scenario's converge saw them (secrets excluded)."""
    return harness.resolve_settings(SETTINGS)


@pytest.fixture(scope="session")
def scenario_vars() -> dict:
    """The scenario's own extra variables (vars/scenario.yml), secrets included."""
    path = harness.scenario_vars_file()
    return (harness.load_yaml(path) or {}) if path else {}


def repo_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else harness.REPO_ROOT / path


def setting_fixture(name: str, variable: str, convert: Callable[[Any], Any] = lambda v: v):
    """A session fixture `name`: the resolved `variable`, through `convert`."""

    def fixture(settings: dict) -> Any:
        return convert(settings[variable])

    fixture.__doc__ = f"The resolved {variable}."
    return pytest.fixture(scope="session", name=name)(fixture)


cluster_name = setting_fixture("cluster_name", "gke_cluster_name")
kubeconfig = setting_fixture("kubeconfig", "gke_cluster_kubeconfig_path", repo_path)
release = setting_fixture("release", "dask_chart_release")
namespace = setting_fixture("namespace", "dask_chart_namespace")
endpoints_file = setting_fixture("endpoints_file", "dask_chart_endpoints_file", repo_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and report.when in ("setup", "call"):
        report.sections.append(("sandbox diagnostics", harness.diagnostics()))
    return report
