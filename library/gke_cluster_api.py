#!/usr/bin/python
# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the gke_cluster_api action plugin (plugins/action/): it runs on the
control node, so this module has no code of its own, as ansible.builtin.template."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gke_cluster_api
short_description: Google API calls of gke_cluster with one connection and one retry policy
description:
  - Runs a C(google.cloud) module (O(module), O(args)), a few raw reads of Google APIs that
    have no module (O(requests)), or gets an access token for a kubeconfig (O(access_token)),
    with the credentials, project, location and proxy/CA environment of O(connection).
  - "Retry policy, the same for every call: answers 429, 500, 502, 503 and 504 and transport
    errors are retried with exponential backoff (O(retry.delay) doubling up to
    O(retry.max_delay), jittered) until O(retry.timeout) seconds have gone; an answer
    FAILED_PRECONDITION that names the operation holding the cluster waits for that operation
    to end (bounded by O(timeout)) and then retries at once; anything else fails at once."
  - "A module that waits for a GKE operation runs asynchronously and is stopped after
    O(timeout) seconds (the google.cloud modules poll without a limit). After a write, the
    operations it started are read back: one that ended with an error fails the task with
    GKE's message (the modules report those as success)."
  - "A raw GKE write of O(requests) (today: a cluster create, C(POST .../clusters), which
    can carry its node pools as C(gcloud container clusters create --num-nodes) sends
    them) is skipped in check mode; otherwise the operation it returns is polled every
    O(poll) seconds until DONE, bounded by O(timeout), and one that ended with an error, or
    is still running at the bound, fails the task with GKE's message. A retry of the write
    that meets 409 ALREADY_EXISTS (an earlier attempt's answer was lost: a transport error,
    a 5xx after GKE acted) waits for the operation that attempt started on the same target;
    without one, the 409 fails the task (the object existed before the call)."
  - Runs on the control node; module runs go through the task's connection as usual.
version_added: "1.0.0"
author:
  - dask-gke contributors (!UNKNOWN)
requirements:
  - google.cloud >= 1.15.0
  - google-auth >= 2.0
options:
  connection:
    description: >-
      project, location, auth_kind, service_account_file, access_token, environment, and
      retry (the retry policy of every call made with this connection, as O(retry)).
    type: dict
    required: true
  retry:
    description: >-
      The retry policy of this task; its keys win over the connection's retry, omitted keys
      take the connection's, then the defaults.
    type: dict
    default: {}
    suboptions:
      timeout:
        description: Total seconds the retries of one call may take.
        type: int
        default: 600
      delay:
        description: First delay between two tries, in seconds; it doubles after each try.
        type: int
        default: 2
      max_delay:
        description: Longest delay between two tries, in seconds.
        type: int
        default: 60
  module:
    description: FQCN of the google.cloud module to run.
    type: str
  args:
    description: Its arguments, without the connection ones.
    type: dict
    default: {}
  timeout:
    description: >-
      Longest a module run, the wait for a raw write's operation, or the wait for an
      operation that holds the cluster may take, in seconds.
    type: int
    default: 1800
  poll:
    description: Seconds between two checks of a running module or operation.
    type: int
    default: 5
  requests:
    description: >-
      Raw calls, made in order, for the Google APIs that have no module or whose module
      cannot say what is needed: name -> URL (a GET) or {url, method, body, allow}, where
      allow adds statuses to O(allow) for that call only. Returns responses.<name>.status
      and .json; for a GKE write, .json is its operation once DONE. The first call that
      fails ends the task.
    type: dict
  allow:
    description: HTTP statuses of O(requests) that are answers, not errors (e.g. [404]).
    type: list
    elements: int
    default: []
  access_token:
    description: >-
      {current, min_valid}: return O(access_token.current) while Google says it is valid
      for at least min_valid seconds (tokeninfo), else a fresh token from the credentials.
    type: dict
    suboptions:
      current:
        description: The token in use (e.g. the one the kubeconfig holds); empty for a new one.
        type: str
      min_valid:
        description: Seconds the returned token must stay valid.
        type: int
        default: 600
attributes:
  check_mode:
    support: full
    description:
      - Reads and token checks run; a write module, or a raw GKE write of O(requests), is
        reported as a change, not run (its response has status and json null).
  diff_mode:
    support: none
    description: GKE objects are compared by the calling tasks, not here.
"""

EXAMPLES = r"""
- name: Read the cluster, retried as GKE needs
  dask_gke.core.gke_cluster_api:
    connection:
      project: my-project
      location: us-central1-a
      auth_kind: application
    retry: {timeout: 600, delay: 2, max_delay: 60}
    module: google.cloud.gcp_container_cluster_info
  register: cluster_info

- name: Read the project and its region in one task; a missing region is an answer
  dask_gke.core.gke_cluster_api:
    connection: "{{ connection }}"
    requests:
      project: https://compute.googleapis.com/compute/v1/projects/my-project
      region:
        url: https://compute.googleapis.com/compute/v1/projects/my-project/regions/us-central1
        allow: [404]
  register: project_read

- name: Create a cluster with its node pool in one request and wait for it
  dask_gke.core.gke_cluster_api:
    connection: "{{ connection }}"
    requests:
      cluster:
        method: POST
        url: https://container.googleapis.com/v1/projects/my-project/locations/us-central1-a/clusters
        body:
          cluster:
            name: dask
            network: default
            nodePools:
              - name: dask-pool
                initialNodeCount: 5
                config: {machineType: n1-standard-1, diskSizeGb: 100, diskType: pd-balanced}
    timeout: 1800
    poll: 5
  register: created  # created.responses.cluster.json: the CREATE_CLUSTER operation, DONE
"""

RETURN = r"""
attempts:
  description: Runs of the module or request, retries included.
  type: int
  returned: always
retried:
  description: Why each retry happened ("HTTP 503", "waited for operation-x (UPGRADE_MASTER)").
  type: list
  elements: str
  returned: always
responses:
  description: For O(requests), name -> {status, json}.
  type: dict
  returned: with requests
operations:
  description: The GKE operations this task started (names); a change when not empty.
  type: list
  elements: str
  returned: after a write
token:
  description: For O(access_token), the token (the task must set no_log).
  type: str
  returned: with access_token
refreshed:
  description: For O(access_token), whether a new token was made.
  type: bool
  returned: with access_token
"""
