# Copyright: dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the dask_chart role: Jupyter password hashing, CIDR checks, Service addresses."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

try:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    HAS_ARGON2 = True
except ImportError:
    HAS_ARGON2 = False

# The prefix and cost parameters Jupyter Server's own passwd() uses.
JUPYTER_ARGON2_PREFIX = "argon2:"


def _hasher() -> PasswordHasher:
    return PasswordHasher(memory_cost=10240, time_cost=10, parallelism=8)


def jupyter_password_hash(password: str, current_hash: str | None = None) -> str:
    """Return a Jupyter Server argon2 hash of password.

    When current_hash (the hash already deployed) matches the password it is
    returned unchanged: a fresh hash has a fresh salt, and re-hashing on
    every run would make every run upgrade the release.
    """
    if not HAS_ARGON2:
        raise AnsibleFilterError(
            "dask_chart_jupyter_hash needs the argon2-cffi Python package on the control node "
            "(pip install -r requirements.txt)"
        )
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("dask_chart_jupyter_hash: the password must be a non-empty string")
    hasher = _hasher()
    if isinstance(current_hash, str) and current_hash.startswith(JUPYTER_ARGON2_PREFIX):
        try:
            hasher.verify(current_hash[len(JUPYTER_ARGON2_PREFIX) :], password)
            return current_hash
        except (VerificationError, InvalidHashError):
            pass
    return JUPYTER_ARGON2_PREFIX + hasher.hash(password)


def invalid_cidrs(ranges) -> list:
    """Return the entries of ranges that are not CIDRs with host bits clear."""
    if not isinstance(ranges, list):
        raise AnsibleFilterError(f"expected a list of CIDRs, got {type(ranges).__name__}")
    invalid = []
    for entry in ranges:
        try:
            if "/" not in str(entry):
                raise ValueError("no prefix length")
            ipaddress.ip_network(str(entry), strict=True)
        except ValueError:
            invalid.append(entry)
    return invalid


def service_addresses(services) -> dict:
    """Map Service objects (as kubernetes.core.k8s_info returns them) by name to the
    shape wait_for_lb_ip returns for each Service: first ingress ip and hostname
    (None without a load balancer), ports (name, port), plus the Service type.
    """
    if not isinstance(services, list):
        raise AnsibleFilterError(f"expected a list of Services, got {type(services).__name__}")
    addresses = {}
    for service in services:
        spec = service.get("spec") or {}
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
        addresses[service["metadata"]["name"]] = {
            "type": spec.get("type"),
            "ip": ingress[0].get("ip"),
            "hostname": ingress[0].get("hostname"),
            "ports": [
                {"name": port.get("name"), "port": port.get("port")}
                for port in spec.get("ports") or []
            ],
        }
    return addresses


class FilterModule:
    def filters(self):
        return {
            "dask_chart_jupyter_hash": jupyter_password_hash,
            "dask_chart_invalid_cidrs": invalid_cidrs,
            "dask_chart_service_addresses": service_addresses,
        }
