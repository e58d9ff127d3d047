"""LoadBalancer wait latency: when the sandbox assigned an IP vs when wait_for_lb_ip saw it.

An independent watch on the Services records when each one gets its ingress
IP (the arrival of the watch event; the API server has no finer timestamp).
The module returns, per service, `ready_after` (seconds since it started
waiting) and `seen_at` (UTC), and its total `elapsed`.
"""

import threading
import time
from pathlib import Path

from kubernetes import client, config, watch

from benchmarks.sandbox_api import BenchError
from benchmarks.timings import epoch

WATCH_SECONDS = 90  # server-side end of the watch; every sample takes far less
STOP_WAIT = 2.0  # seconds stop() waits for the thread


class ServiceWatcher(threading.Thread):
    """Records (epoch, service name, has ingress IP) for every event in a namespace."""

    def __init__(self, kubeconfig: Path, namespace: str, names: list[str]):
        super().__init__(name=f"watch-services-{namespace}", daemon=True)
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.namespace = namespace
        self.events: list[tuple[float, str, bool]] = []
        self.names = set(names)
        # Set once the watch has delivered every named Service (its initial ADDED events):
        # only then may they be cleared, or an initial event would pass for an assignment.
        self.listening = threading.Event()
        self.error: str | None = None  # why the watch ended early, if it did
        self._stopping = False
        self._watch = watch.Watch()

    def run(self) -> None:
        try:
            for event in self._watch.stream(
                self.core.list_namespaced_service, self.namespace, timeout_seconds=WATCH_SECONDS
            ):
                service = event["object"]
                balancer = service.status.load_balancer
                has_ip = bool(balancer and balancer.ingress and balancer.ingress[0].ip)
                self.events.append((time.time(), service.metadata.name, has_ip))
                if self.names <= {name for _, name, _ in self.events}:
                    self.listening.set()
        except Exception as error:  # the stream breaks when stop() closes it: expected then
            if not self._stopping:
                self.error = f"{type(error).__name__}: {error}"

    def stop(self) -> None:
        """Stop recording. The stream notices at its next event or when the server ends it
        (WATCH_SECONDS); the daemon thread is not waited for longer than STOP_WAIT."""
        self._stopping = True
        self._watch.stop()
        self.join(timeout=STOP_WAIT)


def clear_ingress(kubeconfig: Path, namespace: str, names: list[str]) -> float:
    """Remove the Services' ingress so that the sandbox assigns it again; return the epoch."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    cleared = time.time()
    for name in names:
        core.patch_namespaced_service_status(
            name, namespace, [{"op": "remove", "path": "/status/loadBalancer/ingress"}]
        )
    return cleared


def assigned_times(
    events: list[tuple[float, str, bool]], names: list[str], after: float
) -> dict[str, float]:
    """Per service, the first event with an ingress IP after its cleared (no IP) event."""
    assigned: dict[str, float] = {}
    cleared: set[str] = set()
    for when, name, has_ip in sorted(events):
        if when < after or name not in names or name in assigned:
            continue
        if not has_ip:
            cleared.add(name)
        elif name in cleared:
            assigned[name] = when
    missing = sorted(set(names) - set(assigned))
    if missing:
        raise BenchError(f"the watch saw no IP assigned to {missing} after the clear")
    return assigned


def latencies(module_result: dict, assigned: dict[str, float]) -> dict:
    """Detection and return latencies from the module's result and the assignment times.

    The sample is valid only when the module was already waiting when the IPs
    were assigned (else it measured its own start-up, not the wait).
    """
    services = module_result["services"]
    first = next(iter(services.values()))
    module_start = epoch(first["seen_at"]) - first["ready_after"]
    module_return = module_start + module_result["elapsed"]
    seen_latency = {
        name: round(epoch(services[name]["seen_at"]) - when, 3) for name, when in assigned.items()
    }
    return {
        "valid": all(when > module_start for when in assigned.values()),
        "waiting_before_assignment": round(min(assigned.values()) - module_start, 3),
        "seen_latency": seen_latency,
        "return_latency": round(module_return - max(assigned.values()), 3),
    }
