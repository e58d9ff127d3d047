"""The exposure matrix on the live release: ClusterIP, ranges, internet opt-in, internal
load balancer and static IPs, toggled with `--tags upgrade` through every ordered pair.

Each change is one Helm revision, succeeds (no server-side apply conflict), renders
the Services as the state says, converges (the same run again changes nothing), and a
watch on the Services during the run never sees a LoadBalancer without source ranges.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from kubernetes import client, watch

from tests.integration import harness

RANGES = ["127.0.0.0/8"]
STATIC_IPS = {"scheduler": "127.0.200.10", "jupyter": "127.0.200.11"}
INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}
# Every state sets every exposure variable, so a state never inherits the previous one's.
BASE = {
    "dask_chart_allowed_source_ranges": [],
    "dask_chart_expose_to_internet": False,
    "dask_chart_load_balancer_type": "external",
    "dask_chart_load_balancer_ips": {},
}
STATES = {
    "cluster-ip": {},
    "ranges": {"dask_chart_allowed_source_ranges": RANGES},
    "internet": {"dask_chart_expose_to_internet": True},
    "internal": {
        "dask_chart_allowed_source_ranges": RANGES,
        "dask_chart_load_balancer_type": "internal",
    },
    "static-ip": {
        "dask_chart_allowed_source_ranges": RANGES,
        "dask_chart_load_balancer_ips": STATIC_IPS,
    },
}


def expected_service(state: str, component: str) -> dict:
    """The exposure fields of a Service in `state` (None: absent)."""
    if state == "cluster-ip":
        return {"type": "ClusterIP", "ranges": None, "annotations": {}, "ip": None}
    return {
        "type": "LoadBalancer",
        "ranges": ["0.0.0.0/0"] if state == "internet" else RANGES,
        "annotations": INTERNAL if state == "internal" else {},
        "ip": STATIC_IPS[component] if state == "static-ip" else None,
    }


def every_ordered_pair(states: list[str], start: str) -> list[tuple[str, str]]:
    """A walk from `start` that takes every transition a -> b (a != b) exactly once
    (an Eulerian circuit of the complete directed graph, Hierholzer's algorithm)."""
    unused = {a: [b for b in states if b != a] for a in states}
    stack, circuit = [start], []
    while stack:
        if unused[stack[-1]]:
            stack.append(unused[stack[-1]].pop(0))
        else:
            circuit.append(stack.pop())
    circuit.reverse()
    return list(itertools.pairwise(circuit))


TRANSITIONS = every_ordered_pair(list(STATES), "cluster-ip")
assert len(TRANSITIONS) == len(STATES) * (len(STATES) - 1)


class ServiceWatch:
    """Every version of the namespace's Services while a run lasts (a watch in a thread)."""

    def __init__(self, core: client.CoreV1Api, namespace: str):
        self.core, self.namespace = core, namespace
        self.seen: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self):
        listing = self.core.list_namespaced_service(self.namespace)
        self.version = listing.metadata.resource_version
        self.seen.extend(self._describe("LISTED", item) for item in listing.items)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=10)

    @staticmethod
    def _describe(kind: str, service: client.V1Service) -> dict:
        return {
            "event": kind,
            "name": service.metadata.name,
            "type": service.spec.type,
            "ranges": service.spec.load_balancer_source_ranges,
        }

    def _follow(self):
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(
                    self.core.list_namespaced_service,
                    self.namespace,
                    resource_version=self.version,
                    timeout_seconds=2,
                ):
                    self.version = event["object"].metadata.resource_version
                    self.seen.append(self._describe(event["type"], event["object"]))
            except Exception as exc:  # reported by open_load_balancers()
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return

    def open_load_balancers(self) -> list[dict]:
        assert not self.errors, f"the watch broke: {self.errors}"
        return [s for s in self.seen if s["type"] == "LoadBalancer" and not s["ranges"]]


class ReleaseServices:
    """The release's Services, by chart component, reduced to their exposure."""

    def __init__(self, core: client.CoreV1Api, namespace: str, release: str):
        self.core, self.namespace, self.release = core, namespace, release

    def watch(self) -> ServiceWatch:
        return ServiceWatch(self.core, self.namespace)

    def exposure(self) -> dict[str, dict]:
        found = {}
        selector = f"release={self.release}"
        for service in self.core.list_namespaced_service(
            self.namespace, label_selector=selector
        ).items:
            found[service.metadata.labels["component"]] = {
                "type": service.spec.type,
                "ranges": service.spec.load_balancer_source_ranges,
                "annotations": {
                    key: value
                    for key, value in (service.metadata.annotations or {}).items()
                    if key in INTERNAL
                },
                "ip": service.spec.load_balancer_ip,
            }
        return found

    def state(self) -> str | None:
        found = self.exposure()
        for state in STATES:
            if all(found.get(c) == expected_service(state, c) for c in ("scheduler", "jupyter")):
                return state
        return None


@pytest.fixture(scope="module")
def release_services(kubeconfig, namespace, release) -> ReleaseServices:
    return ReleaseServices(client.CoreV1Api(harness.kube_client(kubeconfig)), namespace, release)


@pytest.mark.parametrize(
    ("start", "target"), TRANSITIONS, ids=[f"{a}-to-{b}" for a, b in TRANSITIONS]
)
def test_exposure_change_is_one_safe_revision_that_converges(
    release_services, revision, upgrade_run, start, target
):
    assert release_services.state() == start, "the previous transition failed"
    extra_vars = {**BASE, **STATES[target]}
    with release_services.watch() as services_seen:
        run, calls, before = upgrade_run(extra_vars, f"exposure-{start}-to-{target}")
    assert run.returncode == 0, run.describe()
    assert "conflict" not in run.output, run.describe()
    assert calls == [], harness.describe_requests(calls)
    assert revision() == before + 1
    assert release_services.state() == target, release_services.exposure()
    assert services_seen.open_load_balancers() == [], "a LoadBalancer existed without ranges"

    again, _, _ = upgrade_run(extra_vars, f"exposure-{target}-again")
    assert again.returncode == 0, again.describe()
    assert again.recap().get("changed") == 0, again.describe()
    assert revision() == before + 1


def test_jupyter_enabled_later_is_exposed_from_its_first_version(release_services, upgrade_run):
    exposed = {**BASE, **STATES["ranges"]}
    run, _, _ = upgrade_run({**exposed, "dask_chart_jupyter_enabled": False}, "jupyter-disabled")
    assert run.returncode == 0, run.describe()
    assert "jupyter" not in release_services.exposure()
    with release_services.watch() as services_seen:
        run, _, _ = upgrade_run(exposed, "jupyter-enabled-later")
    assert run.returncode == 0, run.describe()
    jupyter = [s for s in services_seen.seen if s["name"].endswith("-jupyter")]
    assert jupyter, "the watch never saw the Jupyter Service"
    assert jupyter[0]["event"] == "ADDED"
    assert (jupyter[0]["type"], jupyter[0]["ranges"]) == ("LoadBalancer", RANGES)
    assert services_seen.open_load_balancers() == []
