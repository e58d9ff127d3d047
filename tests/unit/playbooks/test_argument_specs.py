"""Every role's meta/argument_specs.yml mirrors its defaults/main.yml."""

from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "meta").is_dir())
PYTHON_TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict}


def load(role: str, relative: str):
    return yaml.safe_load((ROLES_DIR / role / relative).read_text())


def test_the_four_roles_are_checked():
    assert ROLES == ["cleanup", "dask_chart", "gke_cluster", "helm_tiller"]


@pytest.mark.parametrize("role", ROLES)
def test_spec_names_exactly_the_defaults(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_defaults(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    mismatched = {
        name: (spec.get("default"), defaults[name])
        for name, spec in options.items()
        if name in defaults and str(spec.get("default")) != str(defaults[name])
    }
    assert mismatched == {}


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_typed_and_described(role):
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    untyped = [name for name, spec in options.items() if spec.get("type") not in PYTHON_TYPES]
    undescribed = [name for name, spec in options.items() if not spec.get("description")]
    assert (untyped, undescribed) == ([], [])


@pytest.mark.parametrize("role", ROLES)
def test_literal_defaults_have_the_declared_type(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    wrong = {
        name: type(defaults[name]).__name__
        for name, spec in options.items()
        # Templated defaults ("{{ ... }}") are checked when Ansible renders them.
        if not (isinstance(defaults[name], str) and "{{" in defaults[name])
        and spec["type"] != "str"
        and not isinstance(defaults[name], PYTHON_TYPES[spec["type"]])
    }
    assert wrong == {}


@pytest.mark.parametrize("role", ROLES)
def test_variables_carry_the_role_prefix(role):
    defaults = load(role, "defaults/main.yml")
    assert [name for name in defaults if not name.startswith(f"{role}_")] == []
