"""The Google APIs around GKE that a careful deploy reads before it creates anything.

serviceusage (are the APIs enabled), compute (network, subnetwork, machine types,
regional quotas, the project's default service account, forwarding rules) and iam
(may the caller act as the node service account), read-only, with the answers and
error bodies of the real APIs. `CloudProject.check_create` is what GKE itself checks
when a cluster or node pool is created: the emulator's clusters.create and
nodePools.create call it, so a deploy that skips the checks fails half-way, as it
would on GKE.

The project is healthy by default (every API enabled, an auto-mode `default`
network, generous quotas); the `project` fault settings take parts of that away.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from sandbox.emulator.gke import (
    COMPUTE_ROOT,
    ApiError,
    PoolPlan,
    disk_quota_metric,
    invalid_argument,
    is_zone,
    region_of,
)

PROJECT_NUMBER = "123456789012"
SERVICE_TITLES = {
    "container.googleapis.com": "Kubernetes Engine API",
    "compute.googleapis.com": "Compute Engine API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "serviceusage.googleapis.com": "Service Usage API",
}
# name -> (vCPUs, memory MiB), a part of Compute Engine's catalogue
MACHINE_TYPES = {
    "e2-micro": (2, 1024),
    "e2-small": (2, 2048),
    "e2-medium": (2, 4096),
    "e2-standard-2": (2, 8192),
    "e2-standard-4": (4, 16384),
    "e2-standard-8": (8, 32768),
    "n1-standard-1": (1, 3840),
    "n1-standard-2": (2, 7680),
    "n1-standard-4": (4, 15360),
    "n1-standard-8": (8, 30720),
    "n1-highmem-2": (2, 13312),
    "n1-highmem-4": (4, 26624),
    "n2-standard-2": (2, 8192),
    "n2-standard-4": (4, 16384),
    "n2-standard-8": (8, 32768),
}
# Regional quotas of the sandbox project: roomy, so that scenarios can keep many
# clusters; the project fault's quota_limits sets a new project's (CPUS 24,
# SSD_TOTAL_GB 500, IN_USE_ADDRESSES 8, ...).
SANDBOX_QUOTAS = {
    "CPUS": 512.0,
    "DISKS_TOTAL_GB": 65536.0,
    "SSD_TOTAL_GB": 65536.0,
    "IN_USE_ADDRESSES": 512.0,
}
ACT_AS = "iam.serviceAccounts.actAs"
UNKNOWN = ApiError(404, "NOT_FOUND", "Requested entity was not found.")
ZONE_SUFFIXES = ("a", "b", "c", "f")


def service_disabled(project: str, service: str) -> ApiError:
    """403 SERVICE_DISABLED as Google's front end answers it."""
    title = SERVICE_TITLES.get(service, service)
    return ApiError(
        403,
        "PERMISSION_DENIED",
        f"{title} has not been used in project {PROJECT_NUMBER} before or it is disabled. "
        f"Enable it by visiting https://console.developers.google.com/apis/api/{service}"
        f"/overview?project={PROJECT_NUMBER} then retry. If you enabled this API recently, "
        "wait a few minutes for the action to propagate to our systems and retry.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {"service": service, "consumer": f"projects/{PROJECT_NUMBER}"},
            }
        ],
    )


def compute_not_found(resource: str) -> ApiError:
    message = f"The resource '{resource}' was not found"
    return ApiError(
        404,
        "NOT_FOUND",
        message,
        errors=[{"message": message, "domain": "global", "reason": "notFound"}],
    )


class CloudProject:
    """The sandbox project as GKE's prerequisite checks see it."""

    def __init__(self, project_id: str, faults, usage):
        """`usage(project, region, machine_cpus)`: quota usage of the project's clusters."""
        self.project_id = project_id
        self._faults = faults
        self._usage = usage

    # ---- state ---------------------------------------------------------------

    def default_service_account(self) -> str:
        return f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"

    def service_enabled(self, service: str) -> bool:
        return service not in self._faults.project().get("disabled_services", [])

    def require_service(self, project: str, service: str) -> None:
        if not self.service_enabled(service):
            raise service_disabled(project, service)

    def network_exists(self, name: str) -> bool:
        return name == "default" and name not in self._faults.project().get("missing_networks", [])

    def subnetwork_exists(self, region: str, name: str) -> bool:
        # The auto-mode `default` network has a `default` subnetwork in every region.
        return bool(region) and name == "default" and self.network_exists("default")

    def machine_type(self, zone: str, name: str) -> dict | None:
        if name not in MACHINE_TYPES or name in self._faults.project().get(
            "unavailable_machine_types", []
        ):
            return None
        cpus, memory = MACHINE_TYPES[name]
        return {
            "kind": "compute#machineType",
            "name": name,
            "guestCpus": cpus,
            "memoryMb": memory,
            "zone": zone,
            "selfLink": (
                f"{COMPUTE_ROOT}projects/{self.project_id}/zones/{zone}/machineTypes/{name}"
            ),
        }

    def machine_cpus(self, name: str) -> int:
        return MACHINE_TYPES.get(name, (0, 0))[0]

    def quotas(self, project: str, region: str) -> list[dict]:
        limits = {**SANDBOX_QUOTAS, **self._faults.project().get("quota_limits", {})}
        usage = self._usage(project, region, self.machine_cpus)
        return [
            {"metric": metric, "limit": float(limit), "usage": float(usage.get(metric, 0.0))}
            for metric, limit in limits.items()
        ]

    def can_act_as(self, service_account: str) -> bool:
        return not self._faults.project().get("deny_act_as", False)

    def _node_service_account(self, name: str) -> str:
        return self.default_service_account() if name == "default" else name

    # ---- what GKE checks on create ---------------------------------------------

    def check_create(self, project: str, location: str, network, subnetwork, pools) -> None:
        """Raise the ApiError GKE answers when the project cannot hold `pools`.

        `network` is None for a node pool create (the cluster's network exists).
        """
        self.require_service(project, "compute.googleapis.com")
        region = region_of(location)
        if network is not None and not self.network_exists(network):
            raise invalid_argument(f'Network "{network}" does not exist.')
        if subnetwork and not self.subnetwork_exists(region, subnetwork):
            raise invalid_argument(
                f'Subnetwork "projects/{project}/regions/{region}/subnetworks/{subnetwork}" '
                "does not exist."
            )
        plan: PoolPlan
        for plan in pools:
            for zone in plan.zones:
                if self.machine_type(zone, plan.machine_type) is None:
                    raise invalid_argument(
                        "Invalid value for field 'resource.machineType': "
                        f"'zones/{zone}/machineTypes/{plan.machine_type}'. Machine type with "
                        f"name '{plan.machine_type}' does not exist in zone '{zone}'."
                    )
            account = self._node_service_account(plan.service_account)
            if not self.can_act_as(account):
                raise invalid_argument(
                    f'The user does not have access to service account "{account}". Ask a '
                    "project owner to grant you the iam.serviceAccountUser role on the "
                    "service account."
                )
        self._check_quota(project, region, pools)

    def _check_quota(self, project: str, region: str, pools) -> None:
        wanted: dict[str, float] = {}
        for plan in pools:
            for metric, amount in (
                ("CPUS", plan.nodes * self.machine_cpus(plan.machine_type)),
                (disk_quota_metric(plan.disk_type), plan.nodes * plan.disk_size_gb),
                ("IN_USE_ADDRESSES", plan.nodes),
            ):
                wanted[metric] = wanted.get(metric, 0.0) + amount
        for quota in self.quotas(project, region):
            need = wanted.get(quota["metric"], 0.0)
            available = quota["limit"] - quota["usage"]
            if need > available:
                raise ApiError(
                    403,
                    "PERMISSION_DENIED",
                    "Insufficient regional quota to satisfy request: resource "
                    f"\"{quota['metric']}\": request requires '{need:.1f}' and is short "
                    f"'{need - available:.1f}'. project has a quota of '{quota['limit']:.1f}' "
                    f"with '{available:.1f}' available. View and manage quotas at "
                    "https://console.cloud.google.com/iam-admin/quotas?usage=USED"
                    f"&project={project}.",
                )


# ---- routes ------------------------------------------------------------------


def _filter_names(query: dict) -> list[str] | None:
    """Names asked for by a compute list filter such as `name = default` (None: all)."""
    expression = " ".join(query.get("filter", []))
    names = re.findall(r"name\s*=\s*\"?([a-z0-9-]+)\"?", expression)
    return names or None


def _listing(items: list[dict], kind: str, query: dict) -> dict:
    wanted = _filter_names(query)
    chosen = [i for i in items if wanted is None or i["name"] in wanted]
    body = {"kind": kind, "id": kind}
    if chosen:
        body["items"] = chosen
    return body


@dataclass(frozen=True)
class Call:
    """One HTTP call to a Google API host."""

    host: str
    method: str
    path: str
    query: str
    body: dict | None


def route(cloud: CloudProject, gke, call: Call) -> dict:
    """Answer one call to serviceusage, compute or iam; ApiError for anything unknown."""
    params = parse_qs(call.query)
    parts = call.path.strip("/").split("/")
    if call.host == "serviceusage.googleapis.com":
        return _serviceusage(cloud, call.method, parts, params)
    if call.host == "compute.googleapis.com":
        cloud.require_service(cloud.project_id, "compute.googleapis.com")
        return _compute(cloud, gke, call.method, parts, params)
    if call.host == "iam.googleapis.com":
        return _iam(cloud, call.method, parts, call.body)
    raise UNKNOWN


def _check_project(cloud: CloudProject, project: str) -> None:
    if project not in (cloud.project_id, PROJECT_NUMBER):
        raise ApiError(
            403,
            "PERMISSION_DENIED",
            f"Permission denied on resource project {project}.",
        )


def _service(cloud: CloudProject, name: str) -> dict:
    return {
        "name": f"projects/{PROJECT_NUMBER}/services/{name}",
        "config": {"name": name, "title": SERVICE_TITLES.get(name, name)},
        "state": "ENABLED" if cloud.service_enabled(name) else "DISABLED",
        "parent": f"projects/{PROJECT_NUMBER}",
    }


def _serviceusage(cloud: CloudProject, method: str, parts: list[str], params: dict) -> dict:
    # v1/projects/{p}/services[/{name} | :batchGet]
    if method != "GET" or len(parts) < 4 or parts[:2] != ["v1", "projects"]:
        raise UNKNOWN
    _check_project(cloud, parts[2])
    if parts[3] == "services:batchGet" and len(parts) == 4:
        names = [n.rsplit("/", 1)[-1] for n in params.get("names", [])]
        if not names:
            raise invalid_argument("names must be set.")
        return {"services": [_service(cloud, n) for n in names]}
    if parts[3] == "services" and len(parts) == 5:
        return _service(cloud, parts[4])
    if parts[3] == "services" and len(parts) == 4:
        return {"services": [_service(cloud, n) for n in SERVICE_TITLES]}
    raise UNKNOWN


def _zones(region: str) -> list[str]:
    return [f"{region}-{suffix}" for suffix in ZONE_SUFFIXES]


def _compute(cloud: CloudProject, gke, method: str, parts: list[str], params: dict) -> dict:
    # compute/v1/projects/{p}[/...]
    if method != "GET" or parts[:3] != ["compute", "v1", "projects"] or len(parts) < 4:
        raise UNKNOWN
    project, rest = parts[3], parts[4:]
    _check_project(cloud, project)
    base = f"{COMPUTE_ROOT}projects/{project}"
    if not rest:
        return {
            "kind": "compute#project",
            "name": project,
            "id": PROJECT_NUMBER,
            "defaultServiceAccount": cloud.default_service_account(),
        }
    if rest[:2] == ["global", "networks"]:
        return _networks(cloud, project, base, rest[2:], params)
    if rest[0] == "regions" and len(rest) >= 2 and not is_zone(rest[1]):
        return _region(cloud, gke, project, rest[1:], params)
    if rest[0] == "zones" and len(rest) == 4 and rest[2] == "machineTypes":
        machine = cloud.machine_type(rest[1], rest[3])
        if machine is None:
            raise compute_not_found(f"projects/{project}/zones/{rest[1]}/machineTypes/{rest[3]}")
        return machine
    raise UNKNOWN


def _networks(cloud: CloudProject, project: str, base: str, rest: list[str], params) -> dict:
    networks = [
        {
            "kind": "compute#network",
            "name": name,
            "autoCreateSubnetworks": True,
            "selfLink": f"{base}/global/networks/{name}",
        }
        for name in ("default",)
        if cloud.network_exists(name)
    ]
    if not rest:
        return _listing(networks, "compute#networkList", params)
    found = [n for n in networks if n["name"] == rest[0]]
    if len(rest) == 1 and found:
        return found[0]
    raise compute_not_found(f"projects/{project}/global/networks/{rest[0]}")


def _region(cloud: CloudProject, gke, project: str, rest: list[str], params) -> dict:
    region = rest[0]
    base = f"{COMPUTE_ROOT}projects/{project}"
    if len(rest) == 1:
        return {
            "kind": "compute#region",
            "name": region,
            "status": "UP",
            "zones": [f"{base}/zones/{z}" for z in _zones(region)],
            "quotas": cloud.quotas(project, region),
            "selfLink": f"{base}/regions/{region}",
        }
    if rest[1] == "subnetworks":
        subnets = [
            {
                "kind": "compute#subnetwork",
                "name": name,
                "network": f"{base}/global/networks/default",
                "region": f"{base}/regions/{region}",
                "selfLink": f"{base}/regions/{region}/subnetworks/{name}",
            }
            for name in ("default",)
            if cloud.subnetwork_exists(region, name)
        ]
        if len(rest) == 2:
            return _listing(subnets, "compute#subnetworkList", params)
        found = [s for s in subnets if s["name"] == rest[2]]
        if len(rest) == 3 and found:
            return found[0]
        raise compute_not_found(f"projects/{project}/regions/{region}/subnetworks/{rest[-1]}")
    if rest[1:] == ["forwardingRules"]:
        rules = [
            {k: v for k, v in r.items() if k not in ("project", "cluster")}
            for r in gke.leaked_forwarding_rules(project, region)
        ]
        return _listing(rules, "compute#forwardingRuleList", params)
    raise UNKNOWN


def _iam(cloud: CloudProject, method: str, parts: list[str], body) -> dict:
    # v1/projects/{p|-}/serviceAccounts/{email}:testIamPermissions
    if (
        method == "POST"
        and len(parts) == 5
        and parts[:2] == ["v1", "projects"]
        and parts[3] == "serviceAccounts"
        and parts[4].endswith(":testIamPermissions")
    ):
        cloud.require_service(cloud.project_id, "iam.googleapis.com")
        account = parts[4].removesuffix(":testIamPermissions")
        asked = (body or {}).get("permissions") or []
        if not isinstance(asked, list):
            raise invalid_argument("permissions must be a list.")
        granted = [p for p in asked if p != ACT_AS or cloud.can_act_as(account)]
        return {"permissions": granted} if granted else {}
    raise UNKNOWN
