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


def service(name, service_type, ingress=None, ports=()):
    status = {"loadBalancer": {"ingress": ingress}} if ingress is not None else {}
    return {
        "metadata": {"name": name},
        "spec": {"type": service_type, "ports": [dict(port) for port in ports]},
        "status": status,
    }


def test_service_addresses_take_the_first_ingress_and_the_ports():
    scheduler = service(
        "dask-scheduler",
        "LoadBalancer",
        ingress=[{"ip": "127.0.0.10"}, {"ip": "127.0.0.11"}],
        ports=[
            {"name": "dask-scheduler", "port": 8786, "targetPort": 8786},
            {"name": "dask-webui", "port": 80, "targetPort": 8787},
        ],
    )
    assert filters.service_addresses([scheduler]) == {
        "dask-scheduler": {
            "type": "LoadBalancer",
            "ip": "127.0.0.10",
            "hostname": None,
            "ports": [{"name": "dask-scheduler", "port": 8786}, {"name": "dask-webui", "port": 80}],
        }
    }


def test_service_addresses_of_clusterip_and_hostname_services():
    addresses = filters.service_addresses(
        [
            service("dask-jupyter", "ClusterIP", ports=[{"name": "dask-jupyter", "port": 80}]),
            service("elb", "LoadBalancer", ingress=[{"hostname": "lb.example"}]),
            service("pending", "LoadBalancer", ingress=[]),
        ]
    )
    assert addresses["dask-jupyter"]["ip"] is None
    assert addresses["dask-jupyter"]["type"] == "ClusterIP"
    assert addresses["elb"]["hostname"] == "lb.example"
    assert addresses["pending"] == {
        "type": "LoadBalancer",
        "ip": None,
        "hostname": None,
        "ports": [],
    }


def test_service_addresses_refuse_a_non_list():
    with pytest.raises(AnsibleFilterError, match="list of Services"):
        filters.service_addresses({"dask-scheduler": {}})
