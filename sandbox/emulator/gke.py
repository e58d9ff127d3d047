"""GKE v1 clusters, node pools and long-running operations, in memory.

Pure resource logic: request validation, GKE response shapes and the operation
lifecycle. No sockets and no files; the backend (KWOK or fake) does the real
work on worker threads, and `on_change` lets the daemon persist the state.
"""

import base64
import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

log = logging.getLogger("sandbox.gke")

API_ROOT = "https://container.googleapis.com/v1/"
COMPUTE_ROOT = "https://www.googleapis.com/compute/v1/"
OPERATION_TYPES = (
    "CREATE_CLUSTER",
    "DELETE_CLUSTER",
    "CREATE_NODE_POOL",
    "DELETE_NODE_POOL",
    "SET_NODE_POOL_SIZE",
)
# Operations GKE starts by itself (release-channel upgrades): they hold the
# cluster as any operation does, so writes meanwhile answer FAILED_PRECONDITION.
BACKGROUND_OPERATION_TYPES = ("UPGRADE_MASTER", "AUTO_UPGRADE_NODES")
# Where a cluster's API server is announced while the cluster_api fault makes it
# unreachable (private endpoint, authorized networks): a port nothing listens on.
UNREACHABLE_ENDPOINT = "127.0.0.1:1"
DEFAULT_MACHINE_TYPE = "e2-medium"
DEFAULT_POOL = "default-pool"
FAILED_OPERATION_CODE = 13  # google.rpc.Code INTERNAL, as GKE reports failed operations

ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
RESOURCE_NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
INT32_MAX = 2**31 - 1


class ApiError(Exception):
    """An error answered in Google's format {"error": {code, message, status}}."""

    def __init__(
        self,
        http_code: int,
        status: str,
        message: str,
        details: list | None = None,
        errors: list | None = None,
    ):
        """`details`: google.rpc details (ErrorInfo); `errors`: the legacy list that
        Compute Engine still answers with."""
        super().__init__(message)
        self.http_code = http_code
        self.status = status
        self.message = message
        self.details = details or []
        self.errors = errors or []

    def body(self) -> dict:
        error = {"code": self.http_code, "message": self.message, "status": self.status}
        if self.errors:
            error["errors"] = self.errors
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found(name: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"Not found: {name}.")


def is_zone(location: str) -> bool:
    return bool(ZONE_RE.match(location))


def resource_path(project: str, location: str) -> str:
    """GKE names zonal resources with /zones/ in links, regional ones with /locations/."""
    kind = "zones" if is_zone(location) else "locations"
    return f"projects/{project}/{kind}/{location}"


def backend_cluster_id(project: str, location: str, name: str) -> str:
    return f"{project}.{location}.{name}"


def _now_rfc3339(precise: bool = False) -> str:
    now = datetime.now(UTC)
    if precise:
        return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return now.isoformat(timespec="seconds")


def drop_nulls(value):
    """Proto3 JSON: a null field means the field is unset."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value if v is not None]
    return value


def proto3_json(value):
    """Leave out what proto3 JSON leaves out: empty strings, zeros, false, empty lists.

    Empty objects stay: a set message field is printed even when all its fields
    are defaults (GKE answers "legacyAbac": {}).
    """
    if isinstance(value, dict):
        return {
            k: proto3_json(v)
            for k, v in value.items()
            if not (v in ("", []) or v is False or (type(v) is int and v == 0))
        }
    if isinstance(value, list):
        return [proto3_json(v) for v in value]
    return value


def parse_int32(container: dict, key: str, path: str, default: int = 0) -> int:
    """Read an int32 the way proto3 JSON does: a number or a decimal string."""
    raw = container.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise invalid_argument(f"Invalid value at '{path}' (TYPE_INT32), {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise invalid_argument(f"Invalid value at '{path}' (TYPE_INT32), \"{raw}\"") from None
    if not -(2**31) <= value <= INT32_MAX:
        raise invalid_argument(f"Invalid value at '{path}' (TYPE_INT32), \"{raw}\"")
    return value


def check_type(value, expected: type, path: str, proto_type: str):
    """Reject a field of the wrong JSON type the way GKE's JSON parser does."""
    if not isinstance(value, expected):
        raise invalid_argument(f"Invalid value at '{path}' ({proto_type}), {value!r}")
    return value


def check_known_fields(body: dict, known: set[str]) -> None:
    for name in body:
        if name not in known:
            raise invalid_argument(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )


def check_resource_name(value, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid_argument(f"{field_name} must be non-empty.")
    if not RESOURCE_NAME_RE.match(value):
        raise invalid_argument(
            f"Invalid value for field '{field_name}': '{value}'. Must be a match of regex "
            "'(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' (only alphanumerics and '-' allowed, "
            "must start with a letter and end with an alphanumeric, and must be no longer "
            "than 40 characters)."
        )
    return value


def check_location(location: str) -> None:
    if not (is_zone(location) or REGION_RE.match(location)):
        raise invalid_argument(f'Location "{location}" does not exist.')


def region_of(location: str) -> str:
    """'us-central1-a' -> 'us-central1'; a region is its own region."""
    return location.rsplit("-", 1)[0] if is_zone(location) else location


def disk_quota_metric(disk_type: str) -> str:
    """The regional quota a boot disk counts against: SSD-backed types share SSD_TOTAL_GB."""
    return "DISKS_TOTAL_GB" if disk_type == "pd-standard" else "SSD_TOTAL_GB"


@dataclass(frozen=True)
class PoolPlan:
    """What a node pool about to be created asks of the project."""

    machine_type: str
    disk_type: str
    disk_size_gb: int
    service_account: str
    nodes: int  # in every zone together
    zones: tuple[str, ...]

    @classmethod
    def of(cls, pool: dict, zone_count: int) -> "PoolPlan":
        config = pool["config"]
        return cls(
            config["machineType"],
            config["diskType"],
            int(config["diskSizeGb"]),
            config["serviceAccount"],
            pool["initialNodeCount"] * zone_count,
            tuple(pool["locations"]),
        )


def forwarding_rule(cluster: "Cluster", service: dict) -> dict:
    """The GKE forwarding rule of a LoadBalancer Service, as compute lists it."""
    uid = hashlib.sha256(
        f"{cluster.backend_id}/{service['namespace']}/{service['name']}".encode()
    ).hexdigest()[:32]
    region = region_of(cluster.location)
    return {
        "kind": "compute#forwardingRule",
        "name": f"a{uid}",
        "IPAddress": service["ip"],
        "IPProtocol": "TCP",
        "loadBalancingScheme": "EXTERNAL",
        "region": f"{COMPUTE_ROOT}projects/{cluster.project}/regions/{region}",
        "description": json.dumps(
            {"kubernetes.io/service-name": f"{service['namespace']}/{service['name']}"}
        ),
        "project": cluster.project,
        "cluster": cluster.name,
    }


def node_locations(location: str, requested: list | None) -> list[str]:
    """Zones that hold a pool's nodes: the zone itself, or three zones of a region."""
    if requested:
        return list(requested)
    if is_zone(location):
        return [location]
    return [f"{location}-{suffix}" for suffix in ("a", "b", "c")]


@dataclass
class Cluster:
    project: str
    location: str
    name: str
    resource: dict  # GKE Cluster JSON without nodePools
    pools: dict[str, dict] = field(default_factory=dict)  # name -> GKE NodePool JSON
    pool_sizes: dict[str, int] = field(default_factory=dict)  # nodes per zone, per pool
    running_operation: str | None = None

    @property
    def backend_id(self) -> str:
        return backend_cluster_id(self.project, self.location, self.name)

    @property
    def self_link(self) -> str:
        return f"{API_ROOT}{resource_path(self.project, self.location)}/clusters/{self.name}"

    def begin_pool_operation(self) -> None:
        """A node-pool operation reconciles the cluster; a cluster in ERROR stays so."""
        if self.resource["status"] != "ERROR":
            self.resource["status"] = "RECONCILING"

    def end_pool_operation(self) -> None:
        if self.resource["status"] != "ERROR":
            self.resource["status"] = "RUNNING"

    def node_count(self, pool: str) -> int:
        return self.pool_sizes[pool] * len(self.pools[pool]["locations"])

    def to_json(self) -> dict:
        body = dict(self.resource)
        body["nodePools"] = [dict(p) for p in self.pools.values()]
        if self.resource["status"] in ("RUNNING", "RECONCILING"):
            body["currentNodeCount"] = sum(self.node_count(p) for p in self.pools)
        return proto3_json(body)


@dataclass
class Steps:
    """What an operation does: `work` on a worker thread (backend calls, no lock held),
    then `succeeded(result)` or `failed(message)` under the service lock."""

    work: Callable[[], object]
    succeeded: Callable[[object], None]
    failed: Callable[[str], None]


@dataclass
class Operation:
    project: str
    location: str
    resource: dict  # GKE Operation JSON
    fault: str | None = None  # fault mode applied to it, for the request log


class GkeService:
    """The container.googleapis.com v1 resources of one sandbox."""

    def __init__(
        self,
        backend,
        faults,
        kubernetes_version: str,
        on_change: Callable[[], None] = lambda: None,
    ):
        self._backend = backend
        self._faults = faults
        self._version = f"{kubernetes_version}-gke.100"
        self._on_change = on_change
        # What GKE checks in the project before a create (services, network, machine
        # types, service account, quota): a google_apis.CloudProject; None accepts all.
        self.prerequisites = None
        self._lock = threading.RLock()
        self._clusters: dict[tuple[str, str, str], Cluster] = {}
        self._operations: dict[str, Operation] = {}
        # Forwarding rules of LoadBalancer Services whose cluster was deleted
        # under them: what GKE leaks (and bills) when a cluster goes first.
        self._leaked_forwarding_rules: list[dict] = []

    # ---- reads -------------------------------------------------------------

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "clusters": [self._cluster_json(c) for c in self._clusters.values()],
                "operations": [dict(o.resource) for o in self._operations.values()],
                "leakedForwardingRules": [dict(r) for r in self._leaked_forwarding_rules],
            }

    def leaked_forwarding_rules(self, project: str, region: str) -> list[dict]:
        with self._lock:
            return [
                dict(r)
                for r in self._leaked_forwarding_rules
                if r["project"] == project and r["region"] == region
            ]

    def usage(self, project: str, region: str, machine_cpus: Callable[[str], int]) -> dict:
        """What the project's clusters in `region` hold against its regional quotas."""
        totals = {"CPUS": 0.0, "DISKS_TOTAL_GB": 0.0, "SSD_TOTAL_GB": 0.0, "IN_USE_ADDRESSES": 0.0}
        with self._lock:
            for cluster in self._clusters.values():
                if cluster.project != project or region_of(cluster.location) != region:
                    continue
                for name, pool in cluster.pools.items():
                    nodes = cluster.node_count(name)
                    config = pool["config"]
                    totals["CPUS"] += nodes * machine_cpus(config["machineType"])
                    totals[disk_quota_metric(config["diskType"])] += nodes * int(
                        config["diskSizeGb"]
                    )
                    totals["IN_USE_ADDRESSES"] += nodes
        return totals

    def list_clusters(self, project: str, location: str) -> dict:
        with self._lock:
            clusters = [
                self._cluster_json(c)
                for c in self._clusters.values()
                if c.project == project and location in ("-", c.location)
            ]
        return {"clusters": clusters} if clusters else {}

    def get_cluster(self, project: str, location: str, name: str) -> dict:
        with self._lock:
            return self._cluster_json(self._cluster(project, location, name))

    def _cluster_json(self, cluster: Cluster) -> dict:
        body = cluster.to_json()
        if "endpoint" in body and not self._faults.cluster_api_reachable():
            body["endpoint"] = UNREACHABLE_ENDPOINT
        return body

    def list_node_pools(self, project: str, location: str, cluster: str) -> dict:
        with self._lock:
            pools = [
                proto3_json(p) for p in self._cluster(project, location, cluster).pools.values()
            ]
        return {"nodePools": pools} if pools else {}

    def get_node_pool(self, project: str, location: str, cluster: str, pool: str) -> dict:
        with self._lock:
            return proto3_json(self._pool(self._cluster(project, location, cluster), pool))

    def list_operations(self, project: str, location: str) -> dict:
        with self._lock:
            ops = [
                dict(o.resource)
                for o in self._operations.values()
                if o.project == project and location in ("-", o.location)
            ]
        return {"operations": ops} if ops else {}

    def operation_fault(self, name: str) -> str | None:
        with self._lock:
            op = self._operations.get(name)
            return op.fault if op else None

    def get_operation(self, project: str, location: str, name: str) -> dict:
        with self._lock:
            op = self._operations.get(name)
            if op is None or op.project != project or op.location != location:
                raise not_found(f"operation {name}")
            return dict(op.resource)

    # ---- writes ------------------------------------------------------------

    def create_cluster(self, project: str, location: str, body: dict) -> dict:
        check_location(location)
        body = drop_nulls(body)
        check_known_fields(body, {"cluster", "parent", "projectId", "zone"})
        spec = body.get("cluster")
        if not isinstance(spec, dict):
            raise invalid_argument("Cluster is required.")
        name = check_resource_name(spec.get("name"), "cluster.name")
        initial = parse_int32(spec, "initialNodeCount", "cluster.initial_node_count")
        pool_specs = check_type(spec.get("nodePools", []), list, "cluster.node_pools", "NodePool")
        for pool_spec in pool_specs:
            check_type(pool_spec, dict, "cluster.node_pools", "NodePool")
        check_type(spec.get("nodeConfig", {}), dict, "cluster.node_config", "NodeConfig")
        locations = check_type(spec.get("locations", []), list, "cluster.locations", "TYPE_STRING")
        for zone in locations:
            if not isinstance(zone, str) or not is_zone(zone):
                raise invalid_argument(f'Location "{zone}" does not exist.')
        if pool_specs and initial:
            raise invalid_argument(
                "Cluster.initial_node_count and Cluster.node_pools are mutually exclusive."
            )
        if not pool_specs:
            if initial <= 0:
                raise invalid_argument("Cluster.initial_node_count must be greater than zero.")
            pool_specs = [
                {
                    "name": DEFAULT_POOL,
                    "initialNodeCount": initial,
                    "config": spec.get("nodeConfig", {}),
                }
            ]
        zones = node_locations(location, locations)
        pools = [
            self._new_pool((project, location, name), p, zones, "cluster.node_pools")
            for p in pool_specs
        ]
        if len({p["name"] for p in pools}) != len(pools):
            raise invalid_argument("Node pool names must be unique.")
        if self.prerequisites is not None:
            self.prerequisites.check_create(
                project,
                location,
                network=spec.get("network", "default"),
                subnetwork=spec.get("subnetwork"),
                pools=[PoolPlan.of(p, len(zones)) for p in pools],
            )

        with self._lock:
            key = (project, location, name)
            if key in self._clusters:
                raise ApiError(
                    409,
                    "ALREADY_EXISTS",
                    f"Already exists: {resource_path(project, location)}/clusters/{name}.",
                )
            cluster = Cluster(
                project, location, name, self._new_cluster_resource(project, location, spec, zones)
            )
            cluster.resource["initialNodeCount"] = pools[0]["initialNodeCount"]
            cluster.resource["nodeConfig"] = dict(pools[0]["config"])
            for pool in pools:
                cluster.pools[pool["name"]] = pool
                cluster.pool_sizes[pool["name"]] = pool["initialNodeCount"]
            self._clusters[key] = cluster

            def work():
                access = self._backend.create_cluster(cluster.backend_id)
                for pool in pools:
                    self._backend.ensure_node_pool(
                        cluster.backend_id,
                        pool["name"],
                        cluster.node_count(pool["name"]),
                        pool["config"]["machineType"],
                    )
                return access

            def succeeded(access):
                cluster.resource["endpoint"] = access.endpoint
                cluster.resource["masterAuth"] = {
                    "clusterCaCertificate": base64.b64encode(access.ca_pem.encode()).decode()
                }
                cluster.resource["status"] = "RUNNING"
                for pool in cluster.pools.values():
                    pool["status"] = "RUNNING"
                # GKE often upgrades a cluster right after creating it.
                background = self._faults.take_background_operation("after_create")
                if background is not None:
                    self._start_background(cluster, background)

            def failed(message):
                self._mark_error(cluster, message)

            return self._start(
                cluster, "CREATE_CLUSTER", cluster.self_link, Steps(work, succeeded, failed)
            )

    def delete_cluster(self, project: str, location: str, name: str) -> dict:
        with self._lock:
            cluster = self._cluster(project, location, name)
            self._check_idle(cluster)
            cluster.resource["status"] = "STOPPING"
            for pool in cluster.pools.values():
                pool["status"] = "STOPPING"

            def work():
                leaked = self._load_balancer_ingresses(cluster.backend_id)
                self._backend.delete_cluster(cluster.backend_id)
                return leaked

            def succeeded(leaked):
                self._clusters.pop((project, location, name), None)
                self._leaked_forwarding_rules.extend(
                    forwarding_rule(cluster, service) for service in leaked
                )

            def failed(message):
                self._mark_error(cluster, message)

            return self._start(
                cluster, "DELETE_CLUSTER", cluster.self_link, Steps(work, succeeded, failed)
            )

    def _load_balancer_ingresses(self, cluster_id: str) -> list[dict]:
        """LoadBalancer Services with an address: each holds a GKE forwarding rule."""
        lister = getattr(self._backend, "load_balancer_ingresses", None)
        try:
            return lister(cluster_id) if lister else []
        except Exception as error:  # the delete must go on; the leak is then unknown
            log.warning("cannot list the LoadBalancers of %s: %s", cluster_id, error)
            return []

    def create_node_pool(self, project: str, location: str, cluster_name: str, body: dict) -> dict:
        body = drop_nulls(body)
        check_known_fields(body, {"nodePool", "parent", "projectId", "zone", "clusterId"})
        spec = body.get("nodePool")
        if not isinstance(spec, dict):
            raise invalid_argument("Node_pool is required.")
        with self._lock:
            cluster = self._cluster(project, location, cluster_name)
            zones = node_locations(location, cluster.resource.get("locations"))
            pool = self._new_pool((project, location, cluster_name), spec, zones, "node_pool")
            if pool["name"] in cluster.pools:
                raise ApiError(
                    409,
                    "ALREADY_EXISTS",
                    f"Already exists: {resource_path(project, location)}/clusters/{cluster_name}"
                    f"/nodePools/{pool['name']}.",
                )
            self._check_idle(cluster)
            if self.prerequisites is not None:
                self.prerequisites.check_create(
                    project,
                    location,
                    network=None,
                    subnetwork=None,
                    pools=[PoolPlan.of(pool, len(zones))],
                )
            cluster.pools[pool["name"]] = pool
            cluster.pool_sizes[pool["name"]] = pool["initialNodeCount"]
            count = cluster.node_count(pool["name"])

            def running(_):
                pool["status"] = "RUNNING"

            return self._start_pool_operation(
                cluster,
                "CREATE_NODE_POOL",
                pool,
                Steps(
                    lambda: self._backend.ensure_node_pool(
                        cluster.backend_id, pool["name"], count, pool["config"]["machineType"]
                    ),
                    succeeded=running,
                    failed=lambda _: None,
                ),
                failed_status="ERROR",
            )

    def delete_node_pool(
        self, project: str, location: str, cluster_name: str, pool_name: str
    ) -> dict:
        with self._lock:
            cluster = self._cluster(project, location, cluster_name)
            pool = self._pool(cluster, pool_name)
            self._check_idle(cluster)
            pool["status"] = "STOPPING"

            def forget(_):
                cluster.pools.pop(pool_name, None)
                cluster.pool_sizes.pop(pool_name, None)

            return self._start_pool_operation(
                cluster,
                "DELETE_NODE_POOL",
                pool,
                Steps(
                    lambda: self._backend.delete_node_pool(cluster.backend_id, pool_name),
                    succeeded=forget,
                    failed=lambda _: None,
                ),
                failed_status="ERROR",
            )

    def set_node_pool_size(
        self, project: str, location: str, cluster_name: str, pool_name: str, body: dict
    ) -> dict:
        body = drop_nulls(body)
        check_known_fields(
            body, {"nodeCount", "name", "projectId", "zone", "clusterId", "nodePoolId"}
        )
        size = parse_int32(body, "nodeCount", "node_count")
        if size < 0:
            raise invalid_argument("Node count must be non-negative.")
        with self._lock:
            cluster = self._cluster(project, location, cluster_name)
            pool = self._pool(cluster, pool_name)
            self._check_idle(cluster)
            previous = cluster.pool_sizes[pool_name]
            cluster.pool_sizes[pool_name] = size
            count = cluster.node_count(pool_name)
            pool["status"] = "RECONCILING"

            def running(_):
                pool["status"] = "RUNNING"

            def restore_size(_):
                cluster.pool_sizes[pool_name] = previous

            return self._start_pool_operation(
                cluster,
                "SET_NODE_POOL_SIZE",
                pool,
                Steps(
                    lambda: self._backend.ensure_node_pool(
                        cluster.backend_id, pool_name, count, pool["config"]["machineType"]
                    ),
                    succeeded=running,
                    failed=restore_size,
                ),
                failed_status="RUNNING_WITH_ERROR",
            )

    def start_background_operations(self) -> list[dict]:
        """Start the `now` background operation fault on every idle RUNNING cluster."""
        started = []
        with self._lock:
            for cluster in list(self._clusters.values()):
                if cluster.running_operation or cluster.resource["status"] != "RUNNING":
                    continue
                background = self._faults.take_background_operation("now")
                if background is None:
                    break
                started.append(self._start_background(cluster, background))
        return started

    def _start_background(self, cluster: Cluster, background) -> dict:
        """An operation GKE starts by itself; it holds the cluster until it ends.

        UPGRADE_MASTER reconciles the cluster; AUTO_UPGRADE_NODES also reconciles its
        first pool and adds one surge node per zone for the time it runs, as GKE's
        surge upgrades do. Caller holds the lock.
        """
        cluster.begin_pool_operation()
        if background.type == "UPGRADE_MASTER":
            target, pool = cluster.self_link, None
        else:
            pool_name = next(iter(cluster.pools))
            pool = cluster.pools[pool_name]
            target = pool["selfLink"]
            pool["status"] = "RECONCILING"
            zones = len(pool["locations"])

        def work():
            if pool is not None:
                surge = cluster.node_count(pool["name"]) + zones
                self._backend.ensure_node_pool(
                    cluster.backend_id, pool["name"], surge, pool["config"]["machineType"]
                )
            background.wait()
            if pool is not None:
                self._backend.ensure_node_pool(
                    cluster.backend_id,
                    pool["name"],
                    cluster.node_count(pool["name"]),
                    pool["config"]["machineType"],
                )

        def done(_=None):
            if pool is not None and pool["status"] == "RECONCILING":
                pool["status"] = "RUNNING"
            cluster.end_pool_operation()

        return self._start(cluster, background.type, target, Steps(work, done, done))

    # ---- internals ---------------------------------------------------------

    def _cluster(self, project: str, location: str, name: str) -> Cluster:
        cluster = self._clusters.get((project, location, name))
        if cluster is None:
            raise not_found(f"projects/{project}/locations/{location}/clusters/{name}")
        return cluster

    def _pool(self, cluster: Cluster, name: str) -> dict:
        pool = cluster.pools.get(name)
        if pool is None:
            raise not_found(
                f"projects/{cluster.project}/locations/{cluster.location}/clusters/{cluster.name}"
                f"/nodePools/{name}"
            )
        return pool

    @staticmethod
    def _check_idle(cluster: Cluster) -> None:
        if cluster.running_operation:
            raise ApiError(
                400,
                "FAILED_PRECONDITION",
                f"Cluster is running incompatible operation {cluster.running_operation}.",
            )

    @staticmethod
    def _mark_error(cluster: Cluster, message: str) -> None:
        cluster.resource["status"] = "ERROR"
        cluster.resource["statusMessage"] = message
        for pool in cluster.pools.values():
            pool["status"] = "ERROR"

    def _new_cluster_resource(self, project: str, location: str, spec: dict, zones: list) -> dict:
        name = spec["name"]
        path = resource_path(project, location)
        region = location if not is_zone(location) else location.rsplit("-", 1)[0]
        network = spec.get("network", "default")
        subnetwork = spec.get("subnetwork", "default")
        resource = {
            "name": name,
            "loggingService": spec.get("loggingService", "logging.googleapis.com/kubernetes"),
            "monitoringService": spec.get(
                "monitoringService", "monitoring.googleapis.com/kubernetes"
            ),
            "network": network,
            "clusterIpv4Cidr": spec.get("clusterIpv4Cidr", "10.4.0.0/14"),
            "addonsConfig": spec.get("addonsConfig", {"networkPolicyConfig": {"disabled": True}}),
            "subnetwork": subnetwork,
            "locations": zones,
            "labelFingerprint": "a9dc16a7",
            "legacyAbac": spec.get("legacyAbac", {}),
            "networkPolicy": spec.get("networkPolicy", {}),
            "ipAllocationPolicy": spec.get("ipAllocationPolicy", {"useIpAliases": True}),
            "masterAuthorizedNetworksConfig": spec.get("masterAuthorizedNetworksConfig", {}),
            "maintenancePolicy": {"resourceVersion": "e3b0c442"},
            "binaryAuthorization": spec.get("binaryAuthorization", {}),
            "networkConfig": {
                "network": f"projects/{project}/global/networks/{network}",
                "subnetwork": f"projects/{project}/regions/{region}/subnetworks/{subnetwork}",
            },
            "defaultMaxPodsConstraint": {"maxPodsPerNode": "110"},  # int64: a string
            "databaseEncryption": spec.get("databaseEncryption", {"state": "DECRYPTED"}),
            "shieldedNodes": spec.get("shieldedNodes", {"enabled": True}),
            "releaseChannel": spec.get("releaseChannel", {"channel": "REGULAR"}),
            "selfLink": f"{API_ROOT}{path}/clusters/{name}",
            "zone": location,
            "initialClusterVersion": spec.get("initialClusterVersion", self._version),
            "currentMasterVersion": self._version,
            "currentNodeVersion": self._version,
            "createTime": _now_rfc3339(),
            "status": "PROVISIONING",
            "servicesIpv4Cidr": "34.118.224.0/20",
            "location": location,
            "id": hashlib.sha256(
                f"{project}/{location}/{name}/{secrets.token_hex(8)}".encode()
            ).hexdigest(),
            "etag": secrets.token_hex(4),
        }
        for optional in ("description", "resourceLabels", "enableKubernetesAlpha", "enableTpu"):
            if optional in spec:
                resource[optional] = spec[optional]
        return resource

    def _new_pool(self, owner: tuple[str, str, str], spec: dict, zones: list, path: str) -> dict:
        """A NodePool resource for `owner` = (project, location, cluster name)."""
        project, location, cluster = owner
        name = check_resource_name(spec.get("name"), f"{path}.name")
        count = parse_int32(spec, "initialNodeCount", f"{path}.initial_node_count")
        if count < 0:
            raise invalid_argument(f"{path}.initial_node_count must be non-negative.")
        config = dict(check_type(spec.get("config", {}), dict, f"{path}.config", "NodeConfig"))
        config.setdefault("machineType", DEFAULT_MACHINE_TYPE)
        config.setdefault("diskSizeGb", 100)
        config.setdefault("diskType", "pd-balanced")
        config.setdefault("imageType", "COS_CONTAINERD")
        config.setdefault("serviceAccount", "default")
        config.setdefault("oauthScopes", ["https://www.googleapis.com/auth/devstorage.read_only"])
        config.setdefault("metadata", {"disable-legacy-endpoints": "true"})
        parent = resource_path(project, location)
        digest = hashlib.sha256(f"{project}/{location}/{cluster}/{name}".encode()).hexdigest()[:8]
        groups = [
            f"{COMPUTE_ROOT}projects/{project}/zones/{zone}/instanceGroupManagers/"
            f"gke-{cluster[:14]}-{name[:14]}-{digest}-grp"
            for zone in zones
        ]
        return {
            "name": name,
            "config": config,
            "initialNodeCount": count,
            "autoscaling": spec.get("autoscaling", {}),
            "management": spec.get("management", {"autoUpgrade": True, "autoRepair": True}),
            "maxPodsConstraint": {"maxPodsPerNode": "110"},  # int64: a string
            "podIpv4CidrSize": 24,
            "locations": zones,
            "selfLink": f"{API_ROOT}{parent}/clusters/{cluster}/nodePools/{name}",
            "version": self._version,
            "instanceGroupUrls": groups,
            "status": "PROVISIONING",
            "upgradeSettings": {"maxSurge": 1, "strategy": "SURGE"},
            "etag": secrets.token_hex(4),
        }

    def _start_pool_operation(
        self, cluster: Cluster, op_type: str, pool: dict, steps: Steps, *, failed_status: str
    ) -> dict:
        """Start an operation on `pool`; `steps` are what it does to the pool itself.

        On top of them, the cluster reconciles until the operation ends, and a failed
        one leaves the pool in `failed_status` with the error message. Caller holds the lock.
        """
        cluster.begin_pool_operation()

        def succeeded(result):
            steps.succeeded(result)
            cluster.end_pool_operation()

        def failed(message):
            steps.failed(message)
            pool["status"] = failed_status
            pool["statusMessage"] = message
            cluster.end_pool_operation()

        return self._start(cluster, op_type, pool["selfLink"], Steps(steps.work, succeeded, failed))

    def _start(self, cluster: Cluster, op_type: str, target_link: str, steps: Steps) -> dict:
        """Record a RUNNING operation and run `work` on a worker thread. Caller holds the lock."""
        name = f"operation-{int(datetime.now(UTC).timestamp() * 1000)}-{secrets.token_hex(4)}"
        path = resource_path(cluster.project, cluster.location)
        op = Operation(
            cluster.project,
            cluster.location,
            {
                "name": name,
                "zone": cluster.location,
                "operationType": op_type,
                "status": "RUNNING",
                "selfLink": f"{API_ROOT}{path}/operations/{name}",
                "targetLink": target_link,
                "startTime": _now_rfc3339(precise=True),
                "location": cluster.location,
            },
        )
        self._operations[name] = op
        cluster.running_operation = name
        fault = self._faults.take_operation_fault(op_type)
        op.fault = fault.mode if fault else None
        self._on_change()
        threading.Thread(
            target=self._run,
            args=(cluster, op, fault, steps),
            name=f"gke-{op_type.lower()}-{name}",
            daemon=True,
        ).start()
        return dict(op.resource)

    def _run(self, cluster: Cluster, op: Operation, fault, steps: Steps) -> None:
        result, error = None, None
        if fault is not None:
            error = fault.apply()  # stuck: blocks until faults are cleared; slow: sleeps
        if error is None:
            try:
                result = steps.work()
            except Exception as exc:  # any backend failure fails the operation
                error = str(exc) or type(exc).__name__
        with self._lock:
            if error is None:
                steps.succeeded(result)
            else:
                steps.failed(error)
                op.resource["error"] = {"code": FAILED_OPERATION_CODE, "message": error}
                op.resource["statusMessage"] = error
            op.resource["status"] = "DONE"
            op.resource["endTime"] = _now_rfc3339(precise=True)
            # A background operation started by `succeeded` holds the cluster now.
            if cluster.running_operation == op.resource["name"]:
                cluster.running_operation = None
            self._on_change()
