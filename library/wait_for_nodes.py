#!/usr/bin/python
# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_for_nodes
short_description: Wait until enough Kubernetes nodes are Ready
description:
  - Waits until at least O(min_ready) of the Nodes matching O(label_selector) have
    the condition C(Ready) with status C(True), and returns how many are registered
    and Ready.
  - Uses one list and then a Kubernetes watch of C(/api/v1/nodes), not a polling
    loop, so it returns as soon as enough nodes are Ready. The watch resumes from
    the last seen C(resourceVersion) when the stream drops or ends, and lists again
    when the API server answers 410 Gone. Every request is bounded by O(timeout).
  - Right after a cluster is created its API server may refuse connections or answer
    with errors for a while. Connection errors and answers 429 and 5xx, to the list,
    the watch and the client's first contact alike, are retried with a short backoff
    (up to 2 s) until O(timeout). Other errors, for example 401, 403 or 404, fail at
    once.
  - On timeout, the message says whether the API server never answered (with its
    last error), or how many nodes are registered and Ready, naming each node that
    is not Ready with the reason and message of its C(Ready) condition.
  - Read-only; never reports C(changed).
version_added: "1.1.0"
author:
  - dask-gke contributors (!UNKNOWN)
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
options:
  label_selector:
    description:
      - Label selector of the nodes to wait for, such as
        C(cloud.google.com/gke-nodepool=dask-pool).
      - Nodes that register while waiting count too.
    type: str
    required: true
  min_ready:
    description:
      - How many of the matching nodes must be Ready. At least 1.
    type: int
    default: 1
  timeout:
    description:
      - How many seconds to wait in total, retries of an API server that does not
        answer yet included. At least 1.
    type: int
    default: 300
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dask_gke.core.in_process
attributes:
  check_mode:
    support: full
    description:
      - Lists the nodes once and reports what it sees without waiting; fewer Ready
        nodes than O(min_ready) is not a failure then. The module writes nothing in
        either mode.
seealso:
  - module: kubernetes.core.k8s_info
  - module: dask_gke.core.wait_for_lb_ip
"""

EXAMPLES = r"""
- name: Wait for all three nodes of a new node pool
  dask_gke.core.wait_for_nodes:
    label_selector: cloud.google.com/gke-nodepool=dask-pool
    min_ready: 3
    timeout: 600
    # The kubeconfig that the dask_gke.core.gke_cluster role writes.
    kubeconfig: "{{ gke_cluster_kubeconfig }}"
  register: dask_nodes

- name: Show the Ready nodes
  ansible.builtin.debug:
    msg: "{{ dask_nodes.ready }} of {{ dask_nodes.nodes }} Ready: {{ dask_nodes.ready_nodes }}"

- name: Wait until at least one node of an existing pool is Ready
  dask_gke.core.wait_for_nodes:
    label_selector: cloud.google.com/gke-nodepool=default-pool
    timeout: 120
    context: gke_my-project_us-central1-a_dask
"""

RETURN = r"""
nodes:
  description:
    - How many nodes match O(label_selector) (registered, Ready or not).
    - Null when the API server never answered the list.
  returned: always
  type: int
  sample: 3
ready:
  description: How many of them have the condition C(Ready) with status C(True).
  returned: always
  type: int
  sample: 3
ready_nodes:
  description: The names of the Ready nodes, sorted.
  returned: always
  type: list
  elements: str
  sample: [gke-dask-dask-pool-1a2b3c4d-0, gke-dask-dask-pool-1a2b3c4d-1]
pending:
  description:
    - The matching nodes that are not Ready, each with the reason and message of its
      C(Ready) condition (C(NoReadyCondition) when it has none yet).
    - Not empty on success when more nodes match than O(min_ready) asks for.
  returned: always
  type: list
  elements: dict
  sample:
    - name: gke-dask-dask-pool-1a2b3c4d-2
      reason: KubeletNotReady
      message: "container runtime network not ready: NetworkReady=false"
elapsed:
  description: Seconds the module spent, connection retries and the initial list included.
  returned: always
  type: float
  sample: 0.042
relists:
  description: How many times the nodes were listed (1, plus one per 410 Gone).
  returned: always
  type: int
  sample: 1
reconnects:
  description:
    - How many times the watch was opened again after it ended, dropped or failed
      transiently.
  returned: always
  type: int
  sample: 0
"""

import time

from ansible_collections.dask_gke.core.plugins.module_utils.k8s_client import (
    ClusterResource,
    K8sModule,
    connection_argument_spec,
    dynamic_client,
)
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import (
    STREAM_ERRORS,
    ListWatchWaiter,
    finish_wait,
)
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import (
    TaskFailure,
    run_as_module,
)

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:  # reported by K8sModule's check for the kubernetes library
    ApiException = None

TOO_MANY_REQUESTS = 429
SERVER_ERRORS = 500


def ready_condition(node):
    """The node's Ready condition (a dict), or None when it has none yet."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def is_transient(exc):
    """Connection errors and 429/5xx answers: an API server not up yet, worth retrying."""
    if isinstance(exc, TaskFailure) and exc.__cause__ is not None:
        exc = exc.__cause__  # dynamic_client's failure to reach the API server
    if ApiException is not None and isinstance(exc, ApiException):
        status = exc.status or 0
        return status == TOO_MANY_REQUESTS or status >= SERVER_ERRORS
    return isinstance(exc, STREAM_ERRORS)


class NodeWaiter(ListWatchWaiter):
    """Follows the selected Nodes with list + watch until min_ready of them are Ready.

    connect: returns the k8s_client.ClusterResource of the Nodes; called (and retried
    while the API server does not answer) when the wait starts.
    """

    kind = "node"
    plural = "nodes"
    namespaced = False

    def __init__(self, connect, params, check_mode=False, clock=time.monotonic):
        super().__init__(None, None, params, check_mode, clock)
        self.connect = connect
        self.min_ready = params["min_ready"]
        self.answered = False  # whether a list of the nodes ever came back

    def transient(self, exc):
        return is_transient(exc)

    def wait(self):
        if self.resources is None:
            self.resources = self.retrying(self.connect)
        super().wait()

    def on_list(self, items):
        self.answered = True
        super().on_list(items)

    # -- which nodes count ---------------------------------------------------------
    def wanted(self):
        return sorted(self.objects)

    def ready(self, name):
        condition = ready_condition(self.objects.get(name) or {})
        return condition is not None and condition.get("status") == "True"

    def ready_nodes(self):
        return [name for name in self.wanted() if self.ready(name)]

    def done(self):
        return len(self.ready_nodes()) >= self.min_ready

    def problems(self):
        return {}  # nodes may register and turn Ready at any time: only the deadline fails

    # -- results -------------------------------------------------------------------
    def pending(self):
        pending = []
        for name in self.wanted():
            if self.ready(name):
                continue
            condition = ready_condition(self.objects[name])
            if condition is None:
                reason, message = "NoReadyCondition", "the node reports no Ready condition yet"
            else:
                reason = condition.get("reason") or f"Ready={condition.get('status')}"
                message = (condition.get("message") or "").strip()
            pending.append({"name": name, "reason": reason, "message": message})
        return pending

    def timeout_message(self):
        if not self.answered:
            return (
                f"The API server never answered within {self.timeout} s; last error: "
                f"{self.last_api_error or self.last_stream_error or 'none recorded'}."
            )
        not_ready = "; ".join(
            f"{item['name']} ({item['reason']}: {item['message']})"
            if item["message"]
            else f"{item['name']} ({item['reason']})"
            for item in self.pending()
        )
        message = (
            f"{len(self.objects)} node(s) registered, {len(self.ready_nodes())} Ready "
            f"(expected at least {self.min_ready}) after {self.timeout} s"
        )
        message += f"; not Ready: {not_ready}." if not_ready else "."
        return message + self.stream_error_note()

    def ready_fields(self):
        return {
            "nodes": len(self.objects) if self.answered else None,
            "ready": len(self.ready_nodes()),
            "ready_nodes": self.ready_nodes(),
        }


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        label_selector={"type": "str", "required": True},
        min_ready={"type": "int", "default": 1},
        timeout={"type": "int", "default": 300},
    )
    return spec


def check_params(params):
    """Fail (TaskFailure) on options no wait could use, before any API call."""
    if not (params["label_selector"] or "").strip():
        raise TaskFailure(
            f"label_selector={params['label_selector']!r} is empty; give the nodes' labels, "
            "such as cloud.google.com/gke-nodepool=dask-pool"
        )
    if params["min_ready"] <= 0:
        raise TaskFailure(f"min_ready={params['min_ready']} must be at least 1")
    if params["timeout"] <= 0:
        raise TaskFailure(f"timeout={params['timeout']} must be a positive number of seconds")


def run(params, task):
    """The module's work (also run in-process by the action plugin): the result, or TaskFailure."""
    check_params(params)

    def connect():
        return ClusterResource(dynamic_client(params), "v1", "nodes")

    return finish_wait(task, NodeWaiter(connect, params, task.check_mode))


def main():
    module = K8sModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_as_module(module, run)


if __name__ == "__main__":
    main()
