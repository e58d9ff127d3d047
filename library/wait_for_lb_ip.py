#!/usr/bin/python
# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_for_lb_ip
short_description: Wait until LoadBalancer services have an external IP
description:
  - Waits until every selected Service of type C(LoadBalancer) has an entry in
    C(status.loadBalancer.ingress) with an C(ip) (or a C(hostname), see
    O(accept_hostname)), and returns the addresses and ports.
  - Uses a Kubernetes watch, not a polling loop, so it returns as soon as the
    cloud load balancer is assigned. The watch resumes from the last seen
    C(resourceVersion) when the stream drops or ends, and lists again when the
    API server answers 410 Gone. Every request is bounded by O(timeout).
  - A named service that does not exist, or is not of type C(LoadBalancer), fails at
    once. With O(label_selector), matching services of other types are ignored
    (see RV(ignored)), and it fails at once when no C(LoadBalancer) service matches.
  - On timeout, fails listing each pending service with its recent Events,
    warnings first.
  - Read-only; never reports C(changed).
version_added: "1.0.0"
author:
  - dask-gke contributors
requirements:
  - python >= 3.11
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
options:
  namespace:
    description:
      - Namespace of the services.
    type: str
    default: default
  names:
    description:
      - Names of the services to wait for.
      - Mutually exclusive with O(label_selector); one of them is required.
    type: list
    elements: str
    aliases: [name]
  label_selector:
    description:
      - Label selector for the services to wait for, such as C(app=dask,release=dask).
      - Every matching service of type C(LoadBalancer) must get an address; services
        of that type that appear while waiting are waited for too.
    type: str
  timeout:
    description:
      - How many seconds to wait in total, for the whole set of services.
    type: int
    default: 300
  accept_hostname:
    description:
      - Whether an ingress C(hostname) without an C(ip) counts as assigned (as some
        clouds, for example AWS, publish load balancers by name).
    type: bool
    default: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description:
      - Reports the current state without waiting. Missing services and services of
        another type are reported in RV(pending) instead of failing, since the tasks
        that would create them did not run.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Wait for the Dask scheduler and Jupyter load balancers
  wait_for_lb_ip:
    namespace: dask
    names:
      - dask-scheduler
      - dask-jupyter
    timeout: 600
    kubeconfig: "{{ playbook_dir }}/../.sandbox/kubeconfig"
  register: dask_lb

- name: Show the Jupyter URL
  vars:
    jupyter: "{{ dask_lb.services['dask-jupyter'] }}"
  ansible.builtin.debug:
    msg: "http://{{ jupyter.ip }}:{{ jupyter.ports[0].port }}"

- name: Wait for every LoadBalancer service of a release, IPs only
  wait_for_lb_ip:
    namespace: dask
    label_selector: app.kubernetes.io/instance=dask
    accept_hostname: false
    timeout: 300
    context: gke_my-project_us-central1-a_dask
"""

RETURN = r"""
services:
  description:
    - The services that have an address, by name.
    - In check mode, only those that already have one.
  returned: success
  type: dict
  sample:
    dask-scheduler:
      ip: 127.0.0.10
      hostname: null
      ports:
        - {name: dask-scheduler, port: 8786, protocol: TCP, target_port: 8786, node_port: 31001}
        - {name: dask-webui, port: 80, protocol: TCP, target_port: 8787, node_port: 31002}
      ready_after: 3.412
      seen_at: "2026-11-26T14:02:11.532+00:00"
  contains:
    ip:
      description: First ingress IP, or null.
      type: str
    hostname:
      description: First ingress hostname, or null.
      type: str
    ports:
      description: The service's ports (C(spec.ports)).
      type: list
      elements: dict
    ready_after:
      description: Seconds from the start of the module until the address was seen.
      type: float
    seen_at:
      description: UTC time (ISO 8601) when the address was seen.
      type: str
pending:
  description:
    - Services still without an address, each with the reason and, on timeout, its
      recent Events (warnings first, newest first). Empty on success.
  returned: always
  type: list
  elements: dict
  sample:
    - name: dask-jupyter
      reason: no load balancer ingress yet
      events:
        - type: Warning
          reason: SyncLoadBalancerFailed
          message: "Error syncing load balancer: failed to ensure load balancer: quota exceeded"
          count: 3
          last_seen: "2026-11-26T14:07:00+00:00"
ignored:
  description: Services matching O(label_selector) that are not of type C(LoadBalancer).
  returned: always
  type: list
  elements: str
  sample: [dask-headless]
elapsed:
  description: Seconds the module spent, including the initial list.
  returned: always
  type: float
  sample: 3.415
relists:
  description: How many times the services were listed (1, plus one per 410 Gone).
  returned: always
  type: int
  sample: 1
reconnects:
  description: How many times the watch was opened again after it ended or dropped.
  returned: always
  type: int
  sample: 0
"""

import math
import time
from datetime import UTC, datetime
from http.client import HTTPException

from ansible.module_utils.k8s_client import (
    K8sModule,
    api_client,
    connection_argument_spec,
    describe_api_error,
)

try:
    import urllib3
    from kubernetes import watch
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
except ImportError:  # reported by K8sModule's check for the kubernetes library
    CoreV1Api = ApiException = watch = urllib3 = None

# Errors meaning "the stream broke": urllib3's (ProtocolError, ReadTimeoutError,
# MaxRetryError, ...), http.client's and the socket's.
STREAM_ERRORS = (HTTPException, ConnectionError, TimeoutError) + (
    (urllib3.exceptions.HTTPError,) if urllib3 else ()
)
CONNECT_TIMEOUT = 10.0
EVENTS_PER_SERVICE = 5


class WaitFailure(Exception):
    """Ends the wait with a message for fail_json."""


def _now_iso():
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def ingress_address(service, accept_hostname):
    """(ip, hostname, assigned) from status.loadBalancer.ingress."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ip = next((entry["ip"] for entry in ingress if entry.get("ip")), None)
    hostname = next((entry["hostname"] for entry in ingress if entry.get("hostname")), None)
    return ip, hostname, bool(ip or (accept_hostname and hostname))


def service_ports(service):
    return [
        {
            "name": port.get("name"),
            "port": port.get("port"),
            "protocol": port.get("protocol"),
            "target_port": port.get("targetPort"),
            "node_port": port.get("nodePort"),
        }
        for port in (service.get("spec") or {}).get("ports") or []
    ]


def service_type(service):
    return (service.get("spec") or {}).get("type") or "ClusterIP"


def summarize_events(raw_events):
    """Recent events of one object: warnings first, then newest first."""
    events = []
    for event in raw_events:
        events.append(
            {
                "type": event.get("type") or "Normal",
                "reason": event.get("reason") or "",
                "message": (event.get("message") or "").strip(),
                "count": event.get("count") or 1,
                "last_seen": event.get("lastTimestamp")
                or event.get("eventTime")
                or event.get("firstTimestamp")
                or (event.get("metadata") or {}).get("creationTimestamp")
                or "",
            }
        )
    events.sort(key=lambda e: e["last_seen"], reverse=True)
    events.sort(key=lambda e: e["type"] != "Warning")  # stable: keeps newest first
    return events[:EVENTS_PER_SERVICE]


class LoadBalancerWaiter:
    """Follows the services with list + watch until every one has an address."""

    def __init__(self, core, params, check_mode=False, clock=time.monotonic):
        self.core = core
        self.namespace = params["namespace"]
        self.names = params["names"]
        self.selector = params["label_selector"]
        self.accept_hostname = params["accept_hostname"]
        self.timeout = params["timeout"]
        self.check_mode = check_mode
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + self.timeout
        self.services = {}  # name -> latest object (camelCase dict, as the API sends it)
        self.seen = {}  # name -> (ready_after, seen_at)
        self.resource_version = None
        self.relists = 0
        self.reconnects = 0
        self.events_seen = 0
        self.last_stream_error = ""
        self.timed_out_pending = None  # pending services with their events, on timeout

    # -- which services count -------------------------------------------------
    def wanted(self):
        if self.names:
            return list(self.names)
        return sorted(n for n, s in self.services.items() if service_type(s) == "LoadBalancer")

    def ignored(self):
        if self.names:
            return []
        return sorted(n for n, s in self.services.items() if service_type(s) != "LoadBalancer")

    def problems(self):
        """Reasons the wait cannot succeed, by service name (or '' for the selector)."""
        where = f"namespace {self.namespace}"
        if not self.names:
            if self.wanted():
                return {}
            return {
                "": f"no service of type LoadBalancer matches label_selector="
                f"{self.selector!r} in {where}; check the selector and namespace"
            }
        found = {}
        for name in self.names:
            service = self.services.get(name)
            if service is None:
                found[name] = (
                    f"service {name!r} does not exist in {where}; check names and namespace"
                )
            elif service_type(service) != "LoadBalancer":
                found[name] = (
                    f"service {name!r} in {where} is of type {service_type(service)}, not "
                    "LoadBalancer, so it never gets an external address; change its type or "
                    "remove it from names"
                )
        return found

    def ready(self, name):
        service = self.services.get(name)
        return service is not None and ingress_address(service, self.accept_hostname)[2]

    def all_ready(self):
        wanted = self.wanted()
        return bool(wanted) and all(self.ready(name) for name in wanted)

    def _note_ready(self):
        for name in self.wanted():
            if name not in self.seen and self.ready(name):
                self.seen[name] = (round(self.clock() - self.started, 3), _now_iso())

    def _fail_on_problems(self):
        problems = self.problems()
        if problems and not self.check_mode:
            raise WaitFailure("; ".join(problems.values()))

    # -- API calls ---------------------------------------------------------------
    def _selector_args(self):
        return {"label_selector": self.selector} if self.selector else {}

    def _remaining(self):
        return self.deadline - self.clock()

    def relist(self):
        self.relists += 1
        remaining = max(self._remaining(), 1.0)
        try:
            result = self.core.list_namespaced_service(
                self.namespace,
                _request_timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
                **self._selector_args(),
            )
        except (ApiException, *STREAM_ERRORS) as exc:
            raise WaitFailure(
                f"Could not list services in namespace {self.namespace}: {describe_api_error(exc)}"
            ) from exc
        listing = self.core.api_client.sanitize_for_serialization(result)
        names = set(self.names or [])
        self.services = {
            item["metadata"]["name"]: item
            for item in listing.get("items") or []
            if not names or item["metadata"]["name"] in names
        }
        self.resource_version = (listing.get("metadata") or {}).get("resourceVersion")
        self._note_ready()
        self._fail_on_problems()

    def apply(self, event):
        kind = event.get("type")
        # raw_object: the JSON as sent (Watch's deserialize=False path breaks on
        # ERROR events in kubernetes 37, so we take the raw copy it keeps).
        obj = event.get("raw_object") or {}
        metadata = obj.get("metadata") or {}
        if metadata.get("resourceVersion"):
            self.resource_version = metadata["resourceVersion"]
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK: only the resourceVersion matters
        self.events_seen += 1
        name = metadata.get("name")
        if self.names and name not in self.names:
            return
        if kind == "DELETED":
            self.services.pop(name, None)
            self.seen.pop(name, None)
            if self.names:
                raise WaitFailure(
                    f"service {name!r} in namespace {self.namespace} was deleted while waiting"
                )
        else:
            self.services[name] = obj
        self._note_ready()
        self._fail_on_problems()

    def _watch_once(self):
        """One watch request from the last resourceVersion, until done or it ends."""
        remaining = max(self._remaining(), 0.05)
        stream = watch.Watch().stream(
            self.core.list_namespaced_service,
            self.namespace,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            # The server ends the watch at the deadline; the read timeout ends a
            # stalled connection then too.
            timeout_seconds=max(1, math.ceil(remaining)),
            _request_timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
            **self._selector_args(),
        )
        try:
            for event in stream:
                self.apply(event)
                if self.all_ready() or self._remaining() <= 0:
                    return
        finally:
            stream.close()

    def wait(self):
        self.relist()
        if self.check_mode:
            return
        quiet_rounds = 0  # consecutive watches that ended or broke without an event
        while not self.all_ready():
            if self._remaining() <= 0:
                raise WaitFailure(self.timeout_message())
            events_before = self.events_seen
            try:
                self._watch_once()
            except ApiException as exc:
                if exc.status != 410:
                    raise WaitFailure(
                        f"Watching services in namespace {self.namespace} failed: "
                        f"{describe_api_error(exc)}"
                    ) from exc
                self.relist()  # 410 Gone: our resourceVersion is too old
                continue
            except STREAM_ERRORS as exc:
                self.last_stream_error = f"{type(exc).__name__}: {exc}"
            if self.all_ready():
                return
            quiet_rounds = 0 if self.events_seen > events_before else quiet_rounds + 1
            # Reconnect at once after a drop; back off only when watches keep ending
            # without news (API server down or restarting), never past the deadline.
            if quiet_rounds > 1:
                time.sleep(min(0.1 * 2**quiet_rounds, 2.0, max(self._remaining(), 0)))
            self.reconnects += 1

    # -- results -----------------------------------------------------------------
    def recent_events(self, name):
        try:
            result = self.core.list_namespaced_event(
                self.namespace,
                field_selector=f"involvedObject.kind=Service,involvedObject.name={name}",
                _request_timeout=(CONNECT_TIMEOUT, CONNECT_TIMEOUT),
            )
        except (ApiException, *STREAM_ERRORS) as exc:
            return [
                {
                    "type": "Unknown",
                    "reason": "EventsUnavailable",
                    "count": 1,
                    "message": f"could not list events: {exc}",
                    "last_seen": "",
                }
            ]
        items = self.core.api_client.sanitize_for_serialization(result).get("items") or []
        return summarize_events(items)

    def pending(self, with_events=False):
        pending = []
        problems = self.problems()
        for name, reason in problems.items():
            if name:
                pending.append({"name": name, "reason": reason, "events": []})
        for name in self.wanted():
            if name in problems or self.ready(name):
                continue
            events = self.recent_events(name) if with_events else []
            pending.append(
                {"name": name, "reason": "no load balancer ingress yet", "events": events}
            )
        return pending

    def timeout_message(self):
        what = "IP or hostname" if self.accept_hostname else "IP"
        parts = []
        self.timed_out_pending = self.pending(with_events=True)
        for item in self.timed_out_pending:
            events = (
                " | ".join(f"{e['type']} {e['reason']}: {e['message']}" for e in item["events"])
                or "no events"
            )
            parts.append(f"{item['name']} ({item['reason']}; events: {events})")
        message = (
            f"Timed out after {self.timeout}s waiting for a load balancer {what} in namespace "
            f"{self.namespace}: {'; '.join(parts)}."
        )
        if self.last_stream_error:
            message += f" Last watch error: {self.last_stream_error}."
        return message + " Raise timeout or check the cloud load balancer for these services."

    def result(self):
        services = {}
        for name in self.wanted():
            if not self.ready(name):
                continue
            service = self.services[name]
            ip, hostname, _ = ingress_address(service, self.accept_hostname)
            ready_after, seen_at = self.seen[name]
            services[name] = {
                "ip": ip,
                "hostname": hostname,
                "ports": service_ports(service),
                "ready_after": ready_after,
                "seen_at": seen_at,
            }
        return {
            "changed": False,
            "services": services,
            "ignored": self.ignored(),
            "elapsed": round(self.clock() - self.started, 3),
            "relists": self.relists,
            "reconnects": self.reconnects,
        }


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        namespace={"type": "str", "default": "default"},
        names={"type": "list", "elements": "str", "aliases": ["name"]},
        label_selector={"type": "str"},
        timeout={"type": "int", "default": 300},
        accept_hostname={"type": "bool", "default": True},
    )
    return spec


def main():
    module = K8sModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("names", "label_selector")],
        required_one_of=[("names", "label_selector")],
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout={params['timeout']} must be a positive number of seconds")
    if params["names"] is not None and not [n for n in params["names"] if n]:
        module.fail_json(msg="names is empty; give at least one service name or a label_selector")

    waiter = LoadBalancerWaiter(CoreV1Api(api_client(module)), params, module.check_mode)
    try:
        waiter.wait()
    except WaitFailure as exc:
        pending = waiter.timed_out_pending
        if pending is None:
            pending = waiter.pending()
        module.fail_json(msg=str(exc), pending=pending, **waiter.result())
    if module.check_mode:
        # What would fail outside check mode is worth a warning here.
        for reason in waiter.problems().values():
            module.warn(reason)
    module.exit_json(pending=waiter.pending(), **waiter.result())


if __name__ == "__main__":
    main()
