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
  - dask-gke contributors (!UNKNOWN)
requirements:
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
  - dask_gke.core.in_process
attributes:
  check_mode:
    support: full
    description:
      - Reports the current state without waiting. Missing services and services of
        another type are reported in RV(pending) instead of failing, since the tasks
        that would create them did not run.
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Wait for the Dask scheduler and Jupyter load balancers
  dask_gke.core.wait_for_lb_ip:
    namespace: dask
    names:
      - dask-scheduler
      - dask-jupyter
    timeout: 600
    # The kubeconfig that the dask_gke.core.gke_cluster role writes.
    kubeconfig: "{{ gke_cluster_kubeconfig_path }}"
  register: dask_lb

- name: Show the Jupyter URL
  vars:
    jupyter: "{{ dask_lb.services['dask-jupyter'] }}"
  ansible.builtin.debug:
    msg: "http://{{ jupyter.ip }}:{{ jupyter.ports[0].port }}"

- name: Wait for every LoadBalancer service of a release, IPs only
  dask_gke.core.wait_for_lb_ip:
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

import time

from ansible_collections.dask_gke.core.plugins.module_utils.k8s_client import (
    K8sModule,
    NamespacedResource,
    dynamic_client,
)
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import (
    WAIT_ARGUMENT_RULES,
    ListWatchWaiter,
    check_wait_params,
    finish_wait,
    format_events,
    recent_events,
    wait_argument_spec,
)
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import run_as_module


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


class LoadBalancerWaiter(ListWatchWaiter):
    """Follows the services with list + watch until every one has an address."""

    kind = "service"
    plural = "services"

    def __init__(self, services, events, params, check_mode=False, clock=time.monotonic):
        super().__init__(services, events, params, check_mode, clock)
        self.accept_hostname = params["accept_hostname"]

    # -- which services count -------------------------------------------------
    def wanted(self):
        if self.names:
            return list(self.names)
        return sorted(n for n, s in self.objects.items() if service_type(s) == "LoadBalancer")

    def ignored(self):
        if self.names:
            return []
        return sorted(n for n, s in self.objects.items() if service_type(s) != "LoadBalancer")

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
            service = self.objects.get(name)
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
        service = self.objects.get(name)
        return service is not None and ingress_address(service, self.accept_hostname)[2]

    # -- results -----------------------------------------------------------------
    def pending(self, with_events=False):
        pending = []
        problems = self.problems()
        for name, reason in problems.items():
            if name:
                pending.append({"name": name, "reason": reason, "events": []})
        for name in self.wanted():
            if name in problems or self.ready(name):
                continue
            events = (
                recent_events(self.events, self.namespace, "Service", name) if with_events else []
            )
            pending.append(
                {"name": name, "reason": "no load balancer ingress yet", "events": events}
            )
        return pending

    def timeout_message(self):
        what = "IP or hostname" if self.accept_hostname else "IP"
        parts = []
        self.timed_out_pending = self.pending(with_events=True)
        for item in self.timed_out_pending:
            parts.append(
                f"{item['name']} ({item['reason']}; events: {format_events(item['events'])})"
            )
        message = (
            f"Timed out after {self.timeout}s waiting for a load balancer {what} in namespace "
            f"{self.namespace}: {'; '.join(parts)}."
        )
        message += self.stream_error_note()
        return message + " Raise timeout or check the cloud load balancer for these services."

    def ready_fields(self):
        services = {}
        for name in self.wanted():
            if not self.ready(name):
                continue
            service = self.objects[name]
            ip, hostname, _assigned = ingress_address(service, self.accept_hostname)
            ready_after, seen_at = self.seen[name]
            services[name] = {
                "ip": ip,
                "hostname": hostname,
                "ports": service_ports(service),
                "ready_after": ready_after,
                "seen_at": seen_at,
            }
        return {"services": services, "ignored": self.ignored()}


def argument_spec():
    spec = wait_argument_spec()
    spec.update(accept_hostname={"type": "bool", "default": True})
    return spec


ARGUMENT_RULES = WAIT_ARGUMENT_RULES


def run(params, task):
    """The module's work (also run in-process by the action plugin): the result, or TaskFailure."""
    check_wait_params(params, "service")
    client = dynamic_client(params)
    services = NamespacedResource(client, "v1", "services")
    events = NamespacedResource(client, "v1", "events")
    return finish_wait(task, LoadBalancerWaiter(services, events, params, task.check_mode))


def main():
    module = K8sModule(argument_spec=argument_spec(), supports_check_mode=True, **ARGUMENT_RULES)
    run_as_module(module, run)


if __name__ == "__main__":
    main()
