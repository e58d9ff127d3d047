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
  - Runs on the control node; module runs go through the task's connection as usual.
version_added: "1.0.0"
author:
  - dask-gke contributors (!UNKNOWN)
requirements:
  - google.cloud >= 1.15.0
  - google-auth >= 2.0
options:
  connection:
    description: project, location, auth_kind, service_account_file, access_token, environment.
    type: dict
    required: true
  retry:
    description: The retry policy; omitted keys take their defaults.
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
    description: Longest a module run or an operation wait may take, in seconds.
    type: int
    default: 1800
  poll:
    description: Seconds between two checks of a running module or operation.
    type: int
    default: 5
  requests:
    description: >-
      Raw calls, for the Google APIs that have no module: name -> URL (a GET) or
      {url, method, body}. Returns responses.<name>.status and .json.
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
      - Reads and token checks run; a write module is reported as a change, not run.
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
token:
  description: For O(access_token), the token (the task must set no_log).
  type: str
  returned: with access_token
refreshed:
  description: For O(access_token), whether a new token was made.
  type: bool
  returned: with access_token
"""
