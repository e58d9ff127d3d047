#!/usr/bin/python
# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_release_info
short_description: Read the latest revision of a Helm release and the values supplied for it
description:
  - Runs C(helm history RELEASE --max 1 --output json) for the latest revision of the release,
    whatever its status (C(deployed), C(failed), C(pending-upgrade), ...), and its chart; then,
    when there is one, C(helm get values RELEASE --revision N --output json) for the values
    the user supplied for that revision (not the chart's defaults). Helm 3 and 4.
  - A release that does not exist is not an error; RV(exists) is then false and helm runs
    once.
  - Read-only; never reports C(changed). The values may hold secrets, so register the result
    with C(no_log).
  - The dask_chart role reads the deployed release with it, to decide whether the release
    needs a C(helm upgrade) at all, to keep the Jupyter password's hash, and to know what to
    roll back to.
version_added: "1.1.0"
author:
  - dask-gke contributors (!UNKNOWN)
requirements:
  - helm (3.x or 4.x) on the control node
options:
  binary_path:
    description:
      - Path of the helm binary, or a name without C(/) searched on E(PATH).
      - When not set, C(helm) is searched on E(PATH).
    type: path
  release_name:
    description: Name of the release.
    type: str
    required: true
  release_namespace:
    description: Namespace of the release.
    type: str
    required: true
  kubeconfig:
    description:
      - Path of the kubeconfig helm uses (C(--kubeconfig)).
      - When not set, helm's own default (E(KUBECONFIG), else C(~/.kube/config)).
    type: path
  context:
    description: Context of the kubeconfig (C(--kube-context)); its current context when not set.
    type: str
  timeout:
    description:
      - Seconds each helm command may take before it is stopped and the task fails.
    type: int
    default: 120
extends_documentation_fragment:
  - dask_gke.core.in_process
attributes:
  check_mode:
    support: full
    description: Only reads; the same reads run in check mode.
notes:
  - Two short helm processes (about 0.08 s each against the sandbox) instead of
    kubernetes.core.helm_info's module run (about 0.9 s). C(helm status) would be one, but
    neither Helm 3's nor Helm 4's JSON status names the chart.
  - >-
    Helm answers C(release: not found) for a release without revisions; any other failure
    (no API server, no permission to read the release's Secrets) fails the task, quoting helm.
seealso:
  - module: kubernetes.core.helm_info
"""

EXAMPLES = r"""
- name: Read the deployed release
  dask_gke.core.helm_release_info:
    release_name: dask
    release_namespace: dask
    # The kubeconfig that the dask_gke.core.gke_cluster role writes and publishes.
    kubeconfig: "{{ gke_cluster_kubeconfig }}"
  register: release
  no_log: true

- name: Upgrade only when the deployed release differs
  kubernetes.core.helm:
    release_name: dask
    release_namespace: dask
    chart_ref: dask
    chart_repo_url: https://helm.dask.org
    chart_version: 2024.1.1
    release_values: "{{ desired_values }}"
  when: >-
    release.status != 'deployed' or release.chart != 'dask-2024.1.1'
    or release.release_values != desired_values
"""

RETURN = r"""
exists:
  description: Whether the release has a revision.
  returned: success
  type: bool
  sample: true
revision:
  description: Number of the latest revision; 0 when the release does not exist.
  returned: success
  type: int
  sample: 3
status:
  description:
    - Helm's status of the latest revision, such as C(deployed), C(failed) or
      C(pending-upgrade); empty when the release does not exist.
  returned: success
  type: str
  sample: deployed
chart:
  description:
    - C(<chart name>-<chart version>) of the latest revision, as C(helm list) shows it;
      empty when the release does not exist.
  returned: success
  type: str
  sample: dask-2024.1.1
app_version:
  description: The chart's appVersion; empty when it has none or the release does not exist.
  returned: success
  type: str
  sample: 2024.1.0
release_values:
  description:
    - The values supplied for the latest revision (what C(helm get values) shows); an
      empty dict when none.
    - Named as in kubernetes.core.helm_info; not C(values), which Jinja would resolve to the
      dict's method.
  returned: success
  type: dict
  sample: {worker: {replicas: 3}}
commands:
  description: The helm commands that were run.
  returned: always when helm was found
  type: list
  elements: str
  sample:
    - /usr/local/bin/helm history dask --namespace dask --max 1 --output json
    - /usr/local/bin/helm get values dask --namespace dask --revision 3 --output json
"""

import json
import shlex

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import (
    TaskFailure,
    find_binary,
    run_as_module,
)

# What Helm's storage answers for a release without any revision (driver.ErrReleaseNotFound).
RELEASE_NOT_FOUND = "release: not found"
ABSENT = {
    "exists": False,
    "revision": 0,
    "status": "",
    "chart": "",
    "app_version": "",
    "release_values": {},
}


def argument_spec():
    return dict(
        binary_path={"type": "path"},
        release_name={"type": "str", "required": True},
        release_namespace={"type": "str", "required": True},
        kubeconfig={"type": "path"},
        context={"type": "str"},
        timeout={"type": "int", "default": 120},
    )


ARGUMENT_RULES: dict = {}


class HelmReader:
    """Runs `helm <args> --output json` for one release and parses what it prints."""

    def __init__(self, params, task):
        self.binary = find_binary(params["binary_path"], "helm")
        self.connection = ["--namespace", params["release_namespace"]]
        if params["kubeconfig"]:
            self.connection += ["--kubeconfig", params["kubeconfig"]]
        if params["context"]:
            self.connection += ["--kube-context", params["context"]]
        self.timeout = params["timeout"]
        self.task = task
        self.commands: list[str] = []

    def read(self, *args: str):
        """The parsed JSON, or None when helm says the release does not exist."""
        argv = [self.binary, *args, *self.connection, "--output", "json"]
        command = shlex.join(argv)
        self.commands.append(command)
        rc, stdout, stderr = self.task.run_command(argv, timeout=self.timeout)
        if rc != 0:
            if RELEASE_NOT_FOUND in stderr:
                return None
            raise TaskFailure(
                f"'{command}' failed with exit code {rc}: {stderr.strip() or stdout.strip()}",
                commands=self.commands,
                rc=rc,
                stderr=stderr,
            )
        try:
            return json.loads(stdout)
        except ValueError as exc:
            raise TaskFailure(
                f"'{command}' did not print JSON: {exc}", commands=self.commands
            ) from exc


def latest_revision(history) -> dict:
    """The one entry of `helm history --max 1`, checked for the fields the result needs."""
    entry = history[-1] if isinstance(history, list) and history else None
    if not isinstance(entry, dict) or not isinstance(entry.get("revision"), int):
        raise ValueError(f"no revision in {json.dumps(history)[:200]}")
    return entry


def run(params, task):
    """The module's work (also run in-process by the action plugin): the result, or TaskFailure."""
    if params["timeout"] <= 0:
        raise TaskFailure(f"timeout={params['timeout']} must be a positive number of seconds")
    helm = HelmReader(params, task)
    history = helm.read("history", params["release_name"], "--max", "1")
    if history is None:
        return {"changed": False, "commands": helm.commands, **ABSENT}
    try:
        latest = latest_revision(history)
    except ValueError as exc:
        raise TaskFailure(f"'{helm.commands[-1]}' printed {exc}", commands=helm.commands) from exc
    revision = latest["revision"]
    values = helm.read("get", "values", params["release_name"], "--revision", str(revision))
    return {
        "changed": False,
        "commands": helm.commands,
        "exists": True,
        "revision": revision,
        "status": latest.get("status") or "",
        "chart": latest.get("chart") or "",
        "app_version": latest.get("app_version") or "",
        # Helm prints null for a revision installed without values.
        "release_values": values or {},
    }


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(), supports_check_mode=True, **ARGUMENT_RULES
    )
    run_as_module(module, run)


if __name__ == "__main__":
    main()
