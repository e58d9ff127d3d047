"""pytest plugin of the molecule verifiers (loaded by each scenario's conftest.py).

Fixtures for the sandbox, its admin API and the scenario's variables, and a report hook
that appends the sandbox diagnostics to every failing test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
def scenario_dir() -> Path:
    return Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path.cwd()))


@pytest.fixture(scope="session")
def scenario_vars(scenario_dir: Path) -> dict:
    """The extra variables the scenario's converge ran with (vars/scenario.yml, if any)."""
    path = scenario_dir / "vars" / "scenario.yml"
    return (harness.load_yaml(path) or {}) if path.is_file() else {}


def _setting(scenario_vars: dict, role: str, name: str):
    """A variable as the converge saw it: the scenario's value, else the role default."""
    if name in scenario_vars:
        return scenario_vars[name]
    return harness.role_default(role, name)


@pytest.fixture(scope="session")
def cluster_name(scenario_vars: dict) -> str:
    return _setting(scenario_vars, "gke_cluster", "gke_cluster_name")


@pytest.fixture(scope="session")
def kubeconfig(cluster_name: str) -> Path:
    return harness.kubeconfig_path(cluster_name)


@pytest.fixture(scope="session")
def release(scenario_vars: dict) -> str:
    return _setting(scenario_vars, "dask_chart", "dask_chart_release")


@pytest.fixture(scope="session")
def namespace(scenario_vars: dict) -> str:
    return _setting(scenario_vars, "dask_chart", "dask_chart_namespace")


@pytest.fixture(scope="session")
def setting(scenario_vars: dict):
    """`setting(role, name)`: a variable's value in this scenario."""
    return lambda role, name: _setting(scenario_vars, role, name)


@pytest.fixture(scope="session")
def artifact(scenario_vars: dict, cluster_name: str):
    """`artifact(role, name)`: a file-path variable's value as a path under the repo root.

    The role defaults template these paths on the cluster name only
    (artifacts/{{ gke_cluster_name ... }}/...), which is all this rendering handles.
    """

    def render(role: str, name: str) -> Path:
        value = str(_setting(scenario_vars, role, name))
        path = Path(re.sub(r"\{\{[^}]*\}\}", cluster_name, value))
        return path if path.is_absolute() else harness.REPO_ROOT / path

    return render


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and report.when in ("setup", "call"):
        report.sections.append(("sandbox diagnostics", harness.diagnostics()))
    return report
