# Copyright: dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the dask_chart role.

Jupyter password hashing, the checks of the inputs that argument specs cannot
express (source ranges, load balancer options, dask_chart_values), the
exposure and command rewrite the post-renderer applies, and Service addresses.
"""

from __future__ import annotations

import ipaddress
import json
import re
from importlib import metadata

from ansible.errors import AnsibleFilterError

try:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    HAS_ARGON2 = True
except ImportError:
    HAS_ARGON2 = False

# The prefix and cost parameters Jupyter Server's own passwd() uses.
JUPYTER_ARGON2_PREFIX = "argon2:"

# The console scripts distributed removed in 2026.6.0, and the `dask` CLI
# subcommands (entry point group dask_cli, since 2022.10.0) that replace them.
LEGACY_COMMANDS = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}

# GKE load balancer kinds (dask_chart_load_balancer_type) and their annotation.
LOAD_BALANCER_ANNOTATIONS = {
    "external": {},
    "external-rbs": {"cloud.google.com/l4-rbs": "enabled"},
    "internal": {"networking.gke.io/load-balancer-type": "Internal"},
}
ROLE_ANNOTATIONS = {
    "cloud.google.com/l4-rbs": "dask_chart_load_balancer_type=external-rbs",
    "networking.gke.io/load-balancer-type": "dask_chart_load_balancer_type=internal",
    "cloud.google.com/load-balancer-type": "dask_chart_load_balancer_type=internal",
}
COMPONENTS_WITH_SERVICES = ("scheduler", "jupyter")

# The values of the published chart dask/dask 2024.1.1 (its values.yaml and
# what its templates read), by component, with the type each key needs.
MAPPING, LIST, INT, STR, BOOL = "a mapping", "a list", "a whole number", "a string", "true/false"
COMMON_KEYS = {
    "name": STR,
    "image": MAPPING,
    "env": LIST,
    "extraArgs": LIST,
    "resources": MAPPING,
    "tolerations": LIST,
    "affinity": MAPPING,
    "nodeSelector": MAPPING,
    "securityContext": MAPPING,
    "serviceAccountName": STR,
    "livenessProbe": MAPPING,
    "readinessProbe": MAPPING,
}
CHART_KEYS = {
    "scheduler": {
        **COMMON_KEYS,
        "enabled": BOOL,
        "replicas": INT,
        "serviceType": STR,
        "loadBalancerIP": STR,
        "servicePort": INT,
        "serviceAnnotations": MAPPING,
        "metrics": MAPPING,
    },
    "webUI": {"name": STR, "servicePort": INT, "ingress": MAPPING},
    "worker": {
        **COMMON_KEYS,
        "replicas": INT,
        "strategy": MAPPING,
        "custom_scheduler_url": STR,
        "default_resources": MAPPING,
        "mounts": MAPPING,
        "annotations": MAPPING,
        "port": INT,
        "portDashboard": INT,
        "threads_per_worker": INT,
        "metrics": MAPPING,
    },
    "jupyter": {
        **COMMON_KEYS,
        "enabled": BOOL,
        "rbac": BOOL,
        "replicas": INT,
        "serviceType": STR,
        "servicePort": INT,
        "password": STR,
        "passwordHint": STR,
        "command": LIST,
        "args": LIST,
        "extraConfig": STR,
        "mounts": MAPPING,
        "ingress": MAPPING,
    },
}
TOP_LEVEL_KEYS = {"nameOverride": STR, "fullnameOverride": STR, "additional_worker_groups": LIST}
IMAGE_KEYS = {"repository", "tag", "pullPolicy", "pullSecrets", "dask_worker"}
READINESS = "its probe makes a rolled-out Pod one that answers (no variable overrides it)"
# Values the role sets itself, and the variable that sets each.
ROLE_KEYS = {
    ("scheduler", "image", "repository"): "dask_chart_scheduler_image",
    ("scheduler", "image", "tag"): "dask_chart_dask_version",
    ("worker", "image", "repository"): "dask_chart_worker_image",
    ("worker", "image", "tag"): "dask_chart_dask_version",
    ("jupyter", "image", "repository"): "dask_chart_jupyter_image",
    ("jupyter", "image", "tag"): "dask_chart_dask_version",
    (
        "scheduler",
        "serviceType",
    ): "dask_chart_allowed_source_ranges (or dask_chart_expose_to_internet)",
    (
        "jupyter",
        "serviceType",
    ): "dask_chart_allowed_source_ranges (or dask_chart_expose_to_internet)",
    ("scheduler", "loadBalancerIP"): "dask_chart_load_balancer_ips",
    ("scheduler", "serviceAnnotations"): "dask_chart_load_balancer_annotations",
    ("worker", "replicas"): "dask_chart_worker_replicas",
    ("jupyter", "enabled"): "dask_chart_jupyter_enabled",
    ("jupyter", "password"): "dask_chart_jupyter_password",
    ("jupyter", "passwordHint"): "dask_chart_jupyter_password",
    ("scheduler", "readinessProbe"): READINESS,
    ("worker", "readinessProbe"): READINESS,
    ("jupyter", "readinessProbe"): READINESS,
}
ROLE_ENV = {"EXTRA_PIP_PACKAGES": "dask_chart_extra_pip_packages"}
# Jupyter settings an extraConfig must not touch: the login is the role's.
JUPYTER_AUTH_SETTING = re.compile(
    r"password|token|identity_?provider|authenticat|login_handler|disable_check_xsrf",
    re.IGNORECASE,
)
MAX_PORT = 65535
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A domain-prefixed name, as loadBalancerClass needs.
QUALIFIED_NAME = re.compile(
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# A Kubernetes annotation key: an optional DNS-subdomain prefix and a name.
ANNOTATION_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


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


def _shown(value) -> str:
    return json.dumps(value, default=str)


# ---- exposure ----------------------------------------------------------------------------


def source_range_problems(ranges, limit: int) -> list[str]:
    """What is wrong with dask_chart_allowed_source_ranges, one sentence per problem."""
    if not isinstance(ranges, list):
        # A problem, not an error: the one validation task must still name the variable.
        return [f"a YAML list is needed, not {_shown(ranges)}"]
    problems = []
    for entry in ranges:
        text = str(entry)
        try:
            if "/" not in text:
                raise ValueError("no prefix length")
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            problems.append(f"{_shown(entry)} is not a CIDR with the host bits clear ({exc})")
            continue
        if isinstance(network, ipaddress.IPv6Network):
            problems.append(
                f"{_shown(entry)} is an IPv6 range: the Services are IPv4 (GKE's default "
                "single-stack), so it would never match; give IPv4 ranges"
            )
    duplicates = sorted({str(entry) for entry in ranges if ranges.count(entry) > 1})
    if duplicates:
        problems.append(f"{_shown(duplicates)} appear more than once")
    if len(ranges) > limit:
        problems.append(
            f"{len(ranges)} ranges are more than the {limit} a Google Cloud firewall rule accepts; "
            "merge them into wider CIDRs"
        )
    return problems


def load_balancer_problems(lb_type, lb_class, ips, annotations) -> list[str]:
    """What is wrong with the dask_chart_load_balancer_* variables."""
    problems = []
    if lb_class and lb_type != "external":
        problems.append(
            f"dask_chart_load_balancer_class={_shown(lb_class)} and "
            f"dask_chart_load_balancer_type={_shown(lb_type)} both choose the load balancer: "
            "keep the type at external when you set a class"
        )
    if lb_class and not QUALIFIED_NAME.match(lb_class):
        problems.append(
            f"dask_chart_load_balancer_class={_shown(lb_class)} is not a domain-prefixed name "
            "such as networking.gke.io/l4-regional-external"
        )
    for component, address in (ips or {}).items():
        if component not in COMPONENTS_WITH_SERVICES:
            problems.append(
                f"dask_chart_load_balancer_ips.{component}: no such Service; "
                f"the keys are {' and '.join(COMPONENTS_WITH_SERVICES)}"
            )
            continue
        try:
            if not isinstance(ipaddress.ip_address(str(address)), ipaddress.IPv4Address):
                raise ValueError("not IPv4")
        except ValueError:
            problems.append(
                f"dask_chart_load_balancer_ips.{component}={_shown(address)} is not an IPv4 "
                "address (the reserved static IP, e.g. 203.0.113.10)"
            )
    for key, value in (annotations or {}).items():
        if not ANNOTATION_KEY.match(str(key)):
            problems.append(
                f"dask_chart_load_balancer_annotations key {_shown(key)} is not an annotation key"
            )
        elif key in ROLE_ANNOTATIONS:
            problems.append(
                f"dask_chart_load_balancer_annotations.{key} is set by the role: "
                f"use {ROLE_ANNOTATIONS[key]} instead"
            )
        if not isinstance(value, str):
            problems.append(
                f"dask_chart_load_balancer_annotations.{key}={_shown(value)} is not a string: "
                f'annotations are strings, quote it ("{value}")'
            )
    return problems


def service_exposure(exposure: dict) -> dict:
    """The post-renderer's Service settings: Service name -> its exposure fields.

    exposure: fullname, components (scheduler, jupyter), exposed, ranges, and the
    dask_chart_load_balancer_* settings as type, class, ips and annotations.
    """
    services = {}
    lb_class = exposure.get("class") or ""
    ips = exposure.get("ips") or {}
    for component in exposure["components"]:
        name = f"{exposure['fullname']}-{component}"
        if not exposure["exposed"]:
            services[name] = {"type": "ClusterIP"}
            continue
        services[name] = {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": list(exposure["ranges"]),
            "annotations": {
                **({} if lb_class else LOAD_BALANCER_ANNOTATIONS[exposure["type"]]),
                **(exposure.get("annotations") or {}),
            },
        }
        if lb_class:
            services[name]["loadBalancerClass"] = lb_class
        if ips.get(component):
            services[name]["loadBalancerIP"] = str(ips[component])
    return services


# ---- Dask commands -------------------------------------------------------------------------


def _installed_distributed():
    try:
        return metadata.distribution("distributed")
    except metadata.PackageNotFoundError:
        return None


def command_rewrite(dask_version, distribution=None) -> dict:
    """The chart commands to rewrite for dask_version ({}: keep the chart's).

    The evidence is the `distributed` installed next to Ansible (pinned in
    requirements.txt): when it is dask_version and still declares the
    dask-scheduler and dask-worker console scripts, the image has them too and
    the chart's commands stay. Otherwise they become `dask scheduler` and
    `dask worker`, which every supported version has.
    """
    distribution = distribution if distribution is not None else _installed_distributed()
    if distribution and str(distribution.version) == str(dask_version):
        scripts = {ep.name for ep in distribution.entry_points if ep.group == "console_scripts"}
        if set(LEGACY_COMMANDS) <= scripts:
            return {}
    return dict(LEGACY_COMMANDS)


# ---- dask_chart_values ---------------------------------------------------------------------


def _type_problem(path: str, value, expected: str) -> str | None:
    checks = {
        MAPPING: lambda v: isinstance(v, dict),
        LIST: lambda v: isinstance(v, list),
        INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        STR: lambda v: isinstance(v, str),
        BOOL: lambda v: isinstance(v, bool),
    }
    if value is None or checks[expected](value):
        return None
    return f"dask_chart_values.{path}={_shown(value)} must be {expected}"


def _env_problems(path: str, env) -> list[str]:
    if not isinstance(env, list):
        return []
    problems = []
    for index, entry in enumerate(env):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(
                f"dask_chart_values.{path}[{index}]={_shown(entry)} must be a mapping with a name "
                "(and a value), e.g. {name: MY_SETTING, value: '1'}"
            )
        elif entry["name"] in ROLE_ENV:
            problems.append(
                f"dask_chart_values.{path}[{index}] sets "
                f"{entry['name']}={_shown(entry.get('value'))}, "
                "which the role sets on scheduler, workers and Jupyter alike: "
                f"use {ROLE_ENV[entry['name']]} instead"
            )
    return problems


def _component_problems(component: str, values: dict, path: str) -> list[str]:
    problems = []
    known = CHART_KEYS[component]
    for key, value in values.items():
        where = f"{path}.{key}"
        if key not in known:
            problems.append(
                f"dask_chart_values.{where} is not a value of the chart (dask/dask 2024.1.1 reads "
                f"{', '.join(sorted(known))} under {component})"
            )
            continue
        variable = ROLE_KEYS.get((component, key))
        if variable and path == component:
            advice = variable if variable == READINESS else f"use {variable} instead"
            problems.append(
                f"dask_chart_values.{where}={_shown(value)} is set by the role: {advice}"
            )
            continue
        problem = _type_problem(where, value, known[key])
        if problem:
            problems.append(problem)
            continue
        if key == "image" and isinstance(value, dict):
            problems.extend(_image_problems(component, value, where, path != component))
        elif key == "env":
            problems.extend(_env_problems(where, value))
        elif key == "extraConfig" and JUPYTER_AUTH_SETTING.search(value or ""):
            setting = JUPYTER_AUTH_SETTING.search(value).group(0)
            problems.append(
                f"dask_chart_values.{where} touches the Jupyter login ({setting!r}): the role sets "
                "the password and its config; use dask_chart_jupyter_password instead"
            )
        elif key in ("replicas", "servicePort", "port", "portDashboard") and value is not None:
            low = 1 if key != "replicas" else 0
            if value < low or (key != "replicas" and value > MAX_PORT):
                problems.append(
                    f"dask_chart_values.{where}={_shown(value)} is out of range "
                    f"({'at least 0' if key == 'replicas' else '1 to 65535'})"
                )
    return problems


def _image_problems(component: str, image: dict, path: str, in_group: bool) -> list[str]:
    problems = []
    for key, value in image.items():
        if key not in IMAGE_KEYS:
            problems.append(
                f"dask_chart_values.{path}.{key} is not an image setting of the chart "
                f"({', '.join(sorted(IMAGE_KEYS))})"
            )
        elif key in ("repository", "tag"):
            variable = (
                "dask_chart_dask_version"
                if key == "tag"
                else ROLE_KEYS[(component, "image", "repository")]
            )
            problems.append(
                f"dask_chart_values.{path}.{key}={_shown(value)} is set by the role"
                f"{' for every worker group' if in_group else ''}: use {variable} instead"
            )
    return problems


def values_problems(values) -> list[str]:
    """What is wrong with dask_chart_values, one sentence per problem naming its key."""
    if not isinstance(values, dict):
        raise AnsibleFilterError(f"expected a mapping of chart values, got {type(values).__name__}")
    problems = []
    for key, value in values.items():
        if key in CHART_KEYS:
            problem = _type_problem(key, value, MAPPING)
            if problem:
                problems.append(problem)
            elif value:
                problems.extend(_component_problems(key, value, key))
        elif key in TOP_LEVEL_KEYS:
            problem = _type_problem(key, value, TOP_LEVEL_KEYS[key])
            if problem:
                problems.append(problem)
            elif key == "additional_worker_groups":
                problems.extend(_worker_group_problems(value or []))
            elif value and not DNS_LABEL.match(value):
                problems.append(
                    f"dask_chart_values.{key}={_shown(value)} must be lowercase letters, "
                    "digits and '-'"
                )
        elif key == "daskGke":
            problems.append(
                "dask_chart_values.daskGke is where the role records its post-renderer settings; "
                "set them through the dask_chart_* variables"
            )
        else:
            problems.append(
                f"dask_chart_values.{key} is not a value of the chart (dask/dask 2024.1.1 reads "
                f"{', '.join(sorted([*CHART_KEYS, *TOP_LEVEL_KEYS]))})"
            )
    return problems


def _worker_group_problems(groups: list) -> list[str]:
    problems = []
    for index, group in enumerate(groups):
        path = f"additional_worker_groups[{index}]"
        if not isinstance(group, dict) or not DNS_LABEL.match(str(group.get("name", ""))):
            problems.append(
                f"dask_chart_values.{path}={_shown(group)} must be a mapping with a name of "
                "lowercase letters, digits and '-'"
            )
            continue
        problems.extend(_component_problems("worker", group, path))
    return problems


# ---- Services ------------------------------------------------------------------------------


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
            "dask_chart_source_range_problems": source_range_problems,
            "dask_chart_load_balancer_problems": load_balancer_problems,
            "dask_chart_service_exposure": service_exposure,
            "dask_chart_command_rewrite": command_rewrite,
            "dask_chart_values_problems": values_problems,
            "dask_chart_service_addresses": service_addresses,
        }
