#!/usr/bin/python
# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_for_rollout
short_description: Wait until Deployments are fully rolled out, with a watch
description:
  - Waits until every selected Deployment is rolled out the way
    C(kubectl rollout status) judges it - its controller has seen the latest
    spec (C(observedGeneration)), every desired replica is updated, no old replica
    is left and every updated replica is available - and returns their replica counts.
  - Uses one list and then a Kubernetes watch, not a polling loop, so the number
    of API calls does not grow with the number of replicas or the length of the
    rollout. The watch resumes from the last seen C(resourceVersion) when the
    stream drops or ends, and lists again when the API server answers 410 Gone.
    Every request is bounded by O(timeout).
  - A named Deployment that does not exist fails at once, and so does a label
    selector that matches none, or a Deployment whose C(Progressing) condition
    says its progress deadline was exceeded.
  - On timeout, fails listing each Deployment still rolling out with what it
    waits for, its conditions and its recent Events, warnings first.
  - Read-only; never reports C(changed).
version_added: "1.0.0"
author:
  - dask-gke contributors (!UNKNOWN)
requirements:
  - python >= 3.11
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
options:
  namespace:
    description:
      - Namespace of the Deployments.
    type: str
    default: default
  names:
    description:
      - Names of the Deployments to wait for.
      - Mutually exclusive with O(label_selector); one of them is required.
    type: list
    elements: str
    aliases: [name]
  label_selector:
    description:
      - Label selector for the Deployments to wait for, such as
        C(app.kubernetes.io/instance=dask). Deployments that appear while waiting
        are waited for too.
    type: str
  timeout:
    description:
      - How many seconds to wait in total, for the whole set of Deployments.
    type: int
    default: 300
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description:
      - Reports the current state without waiting. Missing Deployments are
        reported in RV(pending) instead of failing, since the tasks that would
        create them did not run.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
seealso:
  - module: kubernetes.core.k8s_info
  - module: dask_gke.core.wait_for_lb_ip
"""

EXAMPLES = r"""
- name: Wait for the Dask scheduler, workers and Jupyter to roll out
  dask_gke.core.wait_for_rollout:
    namespace: dask
    names: [dask-scheduler, dask-worker, dask-jupyter]
    timeout: 600
    # The kubeconfig that the dask_gke.core.gke_cluster role writes.
    kubeconfig: "{{ gke_cluster_kubeconfig_path }}"
  register: dask_rollout

- name: Wait for every Deployment of a release
  dask_gke.core.wait_for_rollout:
    namespace: dask
    label_selector: app.kubernetes.io/instance=dask
    timeout: 300
    context: gke_my-project_us-central1-a_dask
"""

RETURN = r"""
deployments:
  description:
    - The Deployments that are rolled out, by name.
    - In check mode, only those that already are.
  returned: success
  type: dict
  sample:
    dask-worker:
      replicas: 3
      updated_replicas: 3
      available_replicas: 3
      generation: 2
      ready_after: 4.127
      seen_at: "2026-11-26T14:02:11.532+00:00"
  contains:
    replicas:
      description: Desired replicas (C(spec.replicas)).
      type: int
    updated_replicas:
      description: Replicas running the latest spec.
      type: int
    available_replicas:
      description: Replicas available to serve.
      type: int
    generation:
      description: The Deployment's C(metadata.generation) that was rolled out.
      type: int
    ready_after:
      description: Seconds from the start of the module until the rollout was seen complete.
      type: float
    seen_at:
      description: UTC time (ISO 8601) when the rollout was seen complete.
      type: str
pending:
  description:
    - Deployments not rolled out, each with what it waits for, its conditions and,
      on timeout, its recent Events (warnings first, newest first). Empty on success.
  returned: always
  type: list
  elements: dict
  sample:
    - name: dask-worker
      reason: 1 of 3 updated replicas available
      conditions:
        - "Available=False MinimumReplicasUnavailable: Deployment does not have minimum
          availability."
      events:
        - type: Normal
          reason: ScalingReplicaSet
          message: Scaled up replica set dask-worker-7d9c to 3
          count: 1
          last_seen: "2026-11-26T14:07:00Z"
elapsed:
  description: Seconds the module spent, including the initial list.
  returned: always
  type: float
  sample: 4.127
relists:
  description: How many times the Deployments were listed (1, plus one per 410 Gone).
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
    format_events,
    recent_events,
    run_wait,
    wait_argument_spec,
)

# One name per line: ansible-doc cannot read a tuple assignment at module level.
DONE = "done"
WAITING = "waiting"
FAILED = "failed"


def desired_replicas(deployment):
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else replicas  # the API server's default


def rollout_state(deployment):
    """(DONE | WAITING | FAILED, what it waits for), judged as kubectl rollout status does."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    if (status.get("observedGeneration") or 0) < generation:
        return WAITING, "the controller has not seen the latest spec yet"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == (
            "ProgressDeadlineExceeded"
        ):
            return FAILED, f"progress deadline exceeded: {condition.get('message') or ''}".strip()
    desired = desired_replicas(deployment)
    updated = status.get("updatedReplicas") or 0
    current = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < desired:
        return WAITING, f"{updated} of {desired} replicas updated"
    if current > updated:
        return WAITING, f"{current - updated} old replicas pending termination"
    if available < updated:
        return WAITING, f"{available} of {updated} updated replicas available"
    return DONE, "rolled out"


def describe_conditions(deployment):
    return [
        f"{c.get('type')}={c.get('status')} {c.get('reason') or ''}: {c.get('message') or ''}"
        for c in (deployment.get("status") or {}).get("conditions") or []
    ]


class RolloutWaiter(ListWatchWaiter):
    """Follows the Deployments with list + watch until every one is rolled out."""

    kind = "Deployment"
    plural = "deployments"

    def __init__(self, deployments, events, params, check_mode=False, clock=time.monotonic):
        super().__init__(deployments, events, params, check_mode, clock)

    # -- which Deployments count ------------------------------------------------------
    def wanted(self):
        return list(self.names) if self.names else sorted(self.objects)

    def state(self, name):
        deployment = self.objects.get(name)
        if deployment is None:
            return WAITING, "does not exist"
        return rollout_state(deployment)

    def problems(self):
        """Reasons the wait cannot succeed, by Deployment name (or '' for the selector)."""
        where = f"namespace {self.namespace}"
        if not self.names and not self.objects:
            return {
                "": f"no Deployment matches label_selector={self.selector!r} in {where}; "
                "check the selector and namespace"
            }
        found = {}
        for name in self.wanted():
            if name not in self.objects:
                found[name] = (
                    f"Deployment {name!r} does not exist in {where}; check names and namespace"
                )
            elif self.state(name)[0] == FAILED:
                found[name] = f"Deployment {name!r} in {where}: {self.state(name)[1]}"
        return found

    def ready(self, name):
        return self.state(name)[0] == DONE

    # -- results -----------------------------------------------------------------
    def pending(self, with_events=False):
        pending = []
        problems = self.problems()
        for name in self.wanted():
            state, reason = self.state(name)
            if state == DONE:
                continue
            deployment = self.objects.get(name) or {}
            exists = name in self.objects
            pending.append(
                {
                    "name": name,
                    "reason": problems.get(name, reason),
                    "conditions": describe_conditions(deployment),
                    "events": (
                        recent_events(self.events, self.namespace, "Deployment", name)
                        if with_events and exists
                        else []
                    ),
                }
            )
        return pending

    def timeout_message(self):
        self.timed_out_pending = self.pending(with_events=True)
        parts = [
            f"{item['name']} ({item['reason']}; conditions: "
            f"{' | '.join(item['conditions']) or 'none'}; events: {format_events(item['events'])})"
            for item in self.timed_out_pending
        ]
        message = (
            f"Timed out after {self.timeout}s waiting for the rollout of Deployments in namespace "
            f"{self.namespace}: {'; '.join(parts)}."
        )
        message += self.stream_error_note()
        return message + (
            " Raise timeout, or look at the Pods (kubectl describe pods) for scheduling, "
            "image or quota errors."
        )

    def ready_fields(self):
        deployments = {}
        for name in self.wanted():
            if not self.ready(name):
                continue
            deployment = self.objects[name]
            status = deployment.get("status") or {}
            ready_after, seen_at = self.seen[name]
            deployments[name] = {
                "replicas": desired_replicas(deployment),
                "updated_replicas": status.get("updatedReplicas") or 0,
                "available_replicas": status.get("availableReplicas") or 0,
                "generation": (deployment.get("metadata") or {}).get("generation"),
                "ready_after": ready_after,
                "seen_at": seen_at,
            }
        return {"deployments": deployments}


def argument_spec():
    return wait_argument_spec()


def main():
    module = K8sModule(argument_spec=argument_spec(), **WAIT_ARGUMENT_RULES)
    check_wait_params(module, "Deployment")
    client = dynamic_client(module)
    deployments = NamespacedResource(client, "apps/v1", "deployments")
    events = NamespacedResource(client, "v1", "events")
    waiter = RolloutWaiter(deployments, events, module.params, module.check_mode)
    run_wait(module, waiter)


if __name__ == "__main__":
    main()
