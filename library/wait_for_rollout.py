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
    selector that matches none, a Deployment whose C(Progressing) condition
    says its progress deadline was exceeded, or one whose Pending Pods cannot
    get their image (C(ErrImagePull), C(ImagePullBackOff), C(InvalidImageName),
    C(ErrImageNeverPull)), which the module looks for every
    O(pod_check_interval) seconds while a Deployment is not rolled out (one
    list of that Deployment's Pending Pods each time).
  - On timeout, fails listing each Deployment still rolling out with what it
    waits for, its conditions, its recent Events, warnings first, and why its
    Pods are not ready (waiting reasons such as C(CrashLoopBackOff), with the
    last exit).
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
  pod_check_interval:
    description:
      - Seconds between two looks at the Pending Pods of a Deployment that is
        not rolled out, for a Pod that cannot pull its image.
      - C(0) never looks (the wait then ends only at the timeout or the
        progress deadline).
    type: int
    default: 5
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dask_gke.core.in_process
attributes:
  check_mode:
    support: full
    description:
      - Reports the current state without waiting. Missing Deployments are
        reported in RV(pending) instead of failing, since the tasks that would
        create them did not run.
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
      on timeout or a Pod that cannot pull its image, its recent Events (warnings
      first, newest first) and why its Pods are not ready. Empty on success.
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
      pods:
        - "pod dask-worker-7d9c-x2bq container dask-worker: ImagePullBackOff: Back-off pulling
          image \"ghcr.io/dask/dask:2099.1.0\""
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
    describe_api_error,
    dynamic_client,
)
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import (
    CONNECT_TIMEOUT,
    STREAM_ERRORS,
    WAIT_ARGUMENT_RULES,
    ApiException,
    ListWatchWaiter,
    WaitFailure,
    check_wait_params,
    finish_wait,
    format_events,
    recent_events,
    wait_argument_spec,
)
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import run_as_module

# One name per line: ansible-doc cannot read a tuple assignment at module level.
DONE = "done"
WAITING = "waiting"
FAILED = "failed"
# Waiting reasons of a container that will not start on its own: its image
# cannot be pulled (the kubelet keeps retrying, but a tag that does not exist
# never appears by itself).
IMAGE_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
PODS_LISTED = 20  # Pods read per Deployment: enough to name the reason


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


def selector_of(deployment):
    """The Deployment's Pod selector as a label selector string."""
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def pod_reasons(pod, only=None):
    """Why a Pod's containers are not running (waiting reasons, restarts, last exit).

    only: keep the containers waiting for one of these reasons.
    """
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name")
    reasons = []
    for container in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if not reason or (only and reason not in only):
            continue
        text = f"pod {name} container {container.get('name')}: {reason}"
        if waiting.get("message"):
            text += f": {waiting['message']}"
        last = (container.get("lastState") or {}).get("terminated") or {}
        if last:
            text += f" (last exit code {last.get('exitCode')}"
            text += f", {last['reason']})" if last.get("reason") else ")"
        reasons.append(text)
    if not reasons and not only and status.get("phase") == "Pending":
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                message = condition.get("message") or ""
                reasons.append(f"pod {name}: {condition.get('reason')}: {message}".strip())
    return reasons


def describe_conditions(deployment):
    return [
        f"{c.get('type')}={c.get('status')} {c.get('reason') or ''}: {c.get('message') or ''}"
        for c in (deployment.get("status") or {}).get("conditions") or []
    ]


class RolloutWaiter(ListWatchWaiter):
    """Follows the Deployments with list + watch until every one is rolled out."""

    kind = "Deployment"
    plural = "deployments"

    # PLR0913: the base waiter's five arguments, plus the Pods this one also reads.
    def __init__(  # noqa: PLR0913
        self, deployments, events, params, check_mode=False, clock=time.monotonic, *, pods=None
    ):
        super().__init__(deployments, events, params, check_mode, clock)
        self.pods = pods
        self.pod_check_interval = params.get("pod_check_interval") or 0
        self.pod_failures = {}  # Deployment name -> why its Pods cannot start

    # -- the Pods of a Deployment that is not rolled out -------------------------------
    def checks_pods(self):
        return bool(self.pods) and self.pod_check_interval > 0

    def round_seconds(self, remaining):
        """Watch at most pod_check_interval seconds at a time while Pods are checked."""
        return min(remaining, self.pod_check_interval) if self.checks_pods() else remaining

    def list_pods(self, name, **params):
        """(Pods of the Deployment, or [] and why they could not be listed)."""
        selector = selector_of(self.objects[name])
        if not selector:
            return [], ""
        try:
            listing = self.pods.list(
                self.namespace,
                label_selector=selector,
                limit=PODS_LISTED,
                _request_timeout=(CONNECT_TIMEOUT, CONNECT_TIMEOUT),
                **params,
            )
        except (ApiException, *STREAM_ERRORS) as exc:
            return [], f"could not list its Pods: {describe_api_error(exc)}"
        return listing.get("items") or [], ""

    def after_round(self):
        """Fail at once on a Deployment whose Pending Pods cannot get their image."""
        if not self.checks_pods():
            return
        for name in self.wanted():
            if name not in self.objects or self.ready(name):
                continue
            pods, _version = self.list_pods(name, field_selector="status.phase=Pending")
            reasons = [reason for pod in pods for reason in pod_reasons(pod, only=IMAGE_FAILURES)]
            if reasons:
                self.pod_failures[name] = "; ".join(reasons)
        if self.pod_failures:
            self.timed_out_pending = self.pending(with_events=True)
            failures = "; ".join(
                f"Deployment {name!r} in namespace {self.namespace} cannot start its Pods: {why}"
                for name, why in self.pod_failures.items()
            )
            raise WaitFailure(f"{failures}. Check the image name and tag of those Pods.")

    def pods_not_ready(self, name):
        """Why the Pods of a Deployment are not ready, for the timeout message."""
        if not self.pods or name not in self.objects:
            return []
        pods, error = self.list_pods(name)
        return [error] if error else [reason for pod in pods for reason in pod_reasons(pod)]

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
                    "reason": problems.get(name, self.pod_failures.get(name, reason)),
                    "conditions": describe_conditions(deployment),
                    "events": (
                        recent_events(self.events, self.namespace, "Deployment", name)
                        if with_events and exists
                        else []
                    ),
                    "pods": self.pods_not_ready(name) if with_events and exists else [],
                }
            )
        return pending

    def timeout_message(self):
        self.timed_out_pending = self.pending(with_events=True)
        parts = [
            f"{item['name']} ({item['reason']}; conditions: "
            f"{' | '.join(item['conditions']) or 'none'}; events: {format_events(item['events'])}"
            f"{'; pods: ' + ' | '.join(item['pods']) if item['pods'] else ''})"
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
    spec = wait_argument_spec()
    spec["pod_check_interval"] = {"type": "int", "default": 5}
    return spec


ARGUMENT_RULES = WAIT_ARGUMENT_RULES


def run(params, task):
    """The module's work (also run in-process by the action plugin): the result, or TaskFailure."""
    check_wait_params(params, "Deployment")
    client = dynamic_client(params)
    deployments = NamespacedResource(client, "apps/v1", "deployments")
    events = NamespacedResource(client, "v1", "events")
    pods = NamespacedResource(client, "v1", "pods")
    waiter = RolloutWaiter(deployments, events, params, task.check_mode, pods=pods)
    return finish_wait(task, waiter)


def main():
    module = K8sModule(argument_spec=argument_spec(), supports_check_mode=True, **ARGUMENT_RULES)
    run_as_module(module, run)


if __name__ == "__main__":
    main()
