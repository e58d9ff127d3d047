"""Filters of the dask_chart role: Jupyter password hashes and CIDR checks."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from argon2 import PasswordHasher

PLUGIN = Path(__file__).resolve().parents[3] / "roles/dask_chart/filter_plugins/dask_chart.py"
spec = importlib.util.spec_from_file_location("dask_chart_filters", PLUGIN)
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)


def test_hash_has_jupyter_server_argon2_format_and_verifies():
    hashed = filters.jupyter_password_hash("s3cret-password")
    assert hashed.startswith("argon2:$argon2id$")
    assert PasswordHasher().verify(hashed.removeprefix("argon2:"), "s3cret-password")


def test_hash_uses_jupyter_cost_parameters():
    hashed = filters.jupyter_password_hash("s3cret-password")
    assert "$m=10240,t=10,p=8$" in hashed


def test_matching_deployed_hash_is_kept_for_idempotency():
    deployed = filters.jupyter_password_hash("s3cret-password")
    assert filters.jupyter_password_hash("s3cret-password", deployed) == deployed


def test_deployed_hash_of_another_password_is_replaced():
    deployed = filters.jupyter_password_hash("old-password")
    new = filters.jupyter_password_hash("new-password", deployed)
    assert new != deployed
    assert PasswordHasher().verify(new.removeprefix("argon2:"), "new-password")


@pytest.mark.parametrize(
    "deployed",
    ["", None, "sha1:aae8550c0a44:9507d45e087d5ee481a5ce9f4f16f37a0867318c", "argon2:junk"],
)
def test_unusable_deployed_hash_gives_a_fresh_one(deployed):
    new = filters.jupyter_password_hash("s3cret-password", deployed)
    assert new != deployed
    assert PasswordHasher().verify(new.removeprefix("argon2:"), "s3cret-password")


def test_two_fresh_hashes_differ_by_salt():
    assert filters.jupyter_password_hash("same") != filters.jupyter_password_hash("same")


@pytest.mark.parametrize("password", ["", None, 12345678])
def test_empty_or_non_string_password_is_refused(password):
    with pytest.raises(AnsibleFilterError, match="non-empty string"):
        filters.jupyter_password_hash(password)


@pytest.mark.parametrize(
    ("ranges", "invalid"),
    [
        (["127.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"], []),
        (["10.0.0.1/8"], ["10.0.0.1/8"]),
        (["10.0.0.0"], ["10.0.0.0"]),
        (["300.0.0.0/8", "0.0.0.0/0"], ["300.0.0.0/8"]),
        (["not-a-cidr", 42], ["not-a-cidr", 42]),
        ([], []),
    ],
)
def test_invalid_cidrs_lists_exactly_the_bad_entries(ranges, invalid):
    assert filters.invalid_cidrs(ranges) == invalid


def test_invalid_cidrs_needs_a_list():
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        filters.invalid_cidrs("10.0.0.0/8")
