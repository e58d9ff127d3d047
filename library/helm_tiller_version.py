#!/usr/bin/python
# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_tiller_version
short_description: Check the Helm client version and the Tiller server of a cluster
description:
  - Runs C(helm version) and parses its output for Helm 2
    (C(Client:)/C(Server:) lines with C(&version.Version{SemVer:...}) or the
    C(--short) form), Helm 3 and Helm 4 (C(version.BuildInfo{Version:...}); Helm 4
    adds C(KubeClientVersion)), a bare C(--short) version or a C(--template) output
    naming one version. Any other output fails, quoting it.
  - Unless O(tiller=any), reads Tiller from the cluster through the Kubernetes API
    (the C(tiller-deploy) Deployment in O(tiller_namespace)) - its image tag gives the
    server version, its ready replicas give readiness.
  - Fails when the client is older than O(min_version), when a Helm 2 client and
    Tiller differ in minor version (Helm 2 refuses such a pair), or when
    O(tiller=present) and Tiller is missing or not ready.
  - A Tiller found with O(tiller=absent) (typically left over from Helm 2; it is an
    unauthenticated cluster-admin endpoint) is a warning, or a failure with
    O(fail_on_leftover_tiller=true).
  - Read-only; never reports C(changed).
version_added: "1.0.0"
author:
  - dask-gke contributors (!UNKNOWN)
requirements:
  - helm (2.x, 3.x or 4.x) on the control node
  - kubernetes >= 24.2.0 (only when O(tiller) is not C(any))
  - PyYAML >= 3.11 (only when O(tiller) is not C(any))
options:
  binary_path:
    description:
      - Path of the helm binary, or a name without C(/) searched on E(PATH).
      - When not set, C(helm) is searched on E(PATH).
    type: path
  min_version:
    description:
      - Minimum Helm client version, such as C(3.0.0) or C(v4.0.0).
      - When not set, any client version is accepted.
    type: str
  tiller:
    description:
      - Whether a Tiller server is expected in the cluster.
      - V(present) requires the C(tiller-deploy) Deployment with at least one ready
        replica.
      - V(absent) expects no Tiller; one found is reported as a warning (see
        O(fail_on_leftover_tiller)).
      - V(any) expresses no expectation and does not contact the cluster;
        RV(tiller_present) and RV(tiller_ready) are then null. Helm 2's own
        C(Server:) line is still used for the version check.
    type: str
    choices: [absent, present, any]
    default: any
  fail_on_leftover_tiller:
    description:
      - With O(tiller=absent), fail instead of warning when Tiller is found.
    type: bool
    default: false
  tiller_namespace:
    description:
      - Namespace of the C(tiller-deploy) Deployment.
      - Also passed to Helm 2 as E(TILLER_NAMESPACE).
    type: str
    default: kube-system
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dask_gke.core.in_process
attributes:
  check_mode:
    support: full
    description: Only reads; the same checks run in check mode.
notes:
  - Helm 2's C(helm version) itself contacts Tiller (through a port-forward, for up to
    its C(--tiller-connection-timeout), 300 seconds by default); Helm 3 and 4 do not
    contact the cluster. A C(helm version) still running after 360 seconds is stopped
    and fails the task.
  - The connection options are used to read the Tiller Deployment, and
    O(kubeconfig) (when a path) and O(context) are also passed to helm as
    E(KUBECONFIG) and E(HELM_KUBECONTEXT).
seealso:
  - module: kubernetes.core.helm_info
"""

EXAMPLES = r"""
# Helm 3/4 (default mode)
- name: Require Helm 3.8 or newer
  dask_gke.core.helm_tiller_version:
    min_version: "3.8.0"
  register: helm_check

- name: Require Helm 4 from an explicit path and report a leftover Tiller
  dask_gke.core.helm_tiller_version:
    binary_path: /usr/local/bin/helm
    min_version: "4.0.0"
    tiller: absent
    # The kubeconfig that the dask_gke.core.gke_cluster role writes.
    kubeconfig: "{{ gke_cluster_kubeconfig_path }}"

# No kubeconfig option: K8S_AUTH_KUBECONFIG, else ~/.kube/config.
- name: Fail when a Helm 2 Tiller is still installed
  dask_gke.core.helm_tiller_version:
    tiller: absent
    fail_on_leftover_tiller: true
    context: gke_my-project_us-central1-a_dask

# Legacy mode (Helm 2 and Tiller)
- name: Require a ready Tiller that matches the Helm 2 client
  dask_gke.core.helm_tiller_version:
    binary_path: /opt/helm2/helm
    tiller: present
    tiller_namespace: kube-system
    kubeconfig: "{{ gke_cluster_kubeconfig_path }}"
  register: tiller_check

- name: Show the Helm 2 client, Tiller and whether they work together
  ansible.builtin.debug:
    msg: >-
      Helm {{ tiller_check.client_version }}, Tiller {{ tiller_check.server_version }},
      ready={{ tiller_check.tiller_ready }}, compatible={{ tiller_check.compatible }}
"""

RETURN = r"""
client_version:
  description: Version of the helm client, without the leading C(v) or build metadata.
  returned: success and on version failures
  type: str
  sample: 3.22.0
client_major:
  description: Major version of the helm client.
  returned: success and on version failures
  type: int
  sample: 3
kube_client_version:
  description: Kubernetes client version helm was built with (Helm 4 only), else empty.
  returned: success and on version failures
  type: str
  sample: v1.37
output_format:
  description:
    - Which form of C(helm version) output was parsed.
    - One of C(helm2), C(helm2-short), C(buildinfo), C(short), C(template).
  returned: success and on version failures
  type: str
  sample: buildinfo
server_version:
  description:
    - Tiller's version, from the C(tiller-deploy) image tag, or from Helm 2's
      C(Server:) line when the cluster was not read; null when unknown or absent.
  returned: success and on version failures
  type: str
  sample: 2.17.0
tiller_present:
  description: Whether the C(tiller-deploy) Deployment exists; null with O(tiller=any).
  returned: success and on version failures
  type: bool
  sample: false
tiller_ready:
  description: Whether Tiller has at least one ready replica; null with O(tiller=any).
  returned: success and on version failures
  type: bool
  sample: false
tiller_image:
  description: Image of the Tiller container, or null.
  returned: success and on version failures
  type: str
  sample: ghcr.io/helm/tiller:v2.17.0
tiller_error:
  description: The error Helm 2 printed instead of a C(Server:) line, else empty.
  returned: success and on version failures
  type: str
  sample: could not find tiller
compatible:
  description: Whether all checks passed (warnings do not count).
  returned: success and on version failures
  type: bool
  sample: true
reasons:
  description: Every failed check and warning, one sentence each; empty when all is well.
  returned: success and on version failures
  type: list
  elements: str
  sample:
    - >-
      Tiller found (Deployment kube-system/tiller-deploy, image ghcr.io/helm/tiller:v2.17.0)
      although tiller=absent ...
binary_path:
  description: Absolute path of the helm binary that was run.
  returned: always when helm was found
  type: str
  sample: /usr/local/bin/helm
command:
  description: The helm command that was run.
  returned: always when helm was found
  type: str
  sample: /usr/local/bin/helm version
stdout:
  description: Standard output of the helm command.
  returned: always when helm ran
  type: str
  sample: >-
    version.BuildInfo{Version:"v4.3.1", GitCommit:"", GitTreeState:"",
    GoVersion:"go1.26.8", KubeClientVersion:"v1.37"}
stderr:
  description: Standard error of the helm command.
  returned: always when helm ran
  type: str
  sample: ""
"""

import shlex
from http import HTTPStatus

from ansible_collections.dask_gke.core.plugins.module_utils.helm_versions import (
    HelmVersionError,
    image_tag_version,
    parse_helm_version,
    parse_semver,
)
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_client import (
    K8sModule,
    NamespacedResource,
    connection_argument_spec,
    describe_api_error,
    dynamic_client,
)
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import (
    TaskFailure,
    find_binary,
    run_as_module,
)

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:  # reported by dynamic_client when the cluster is read
    ApiException = None

TILLER_DEPLOYMENT = "tiller-deploy"
# The Helm major version that talks to a Tiller.
HELM_WITH_TILLER = 2
# Seconds `helm version` may take: Helm 2 asks Tiller for up to its own 300 s
# --tiller-connection-timeout; Helm 3 and 4 do not connect.
HELM_VERSION_TIMEOUT = 360


def run_helm_version(params, task, binary):
    """Run `helm version`; fail with rc/stdout/stderr/command when it cannot be used."""
    argv = [binary, "version"]
    environ = {"TILLER_NAMESPACE": params["tiller_namespace"]}
    if isinstance(params.get("kubeconfig"), str):
        environ["KUBECONFIG"] = params["kubeconfig"]
    if params.get("context"):
        environ["HELM_KUBECONTEXT"] = params["context"]
    rc, stdout, stderr = task.run_command(
        argv, environ_update=environ, timeout=HELM_VERSION_TIMEOUT
    )
    run = {"command": shlex.join(argv), "rc": rc, "stdout": stdout, "stderr": stderr}
    try:
        info = parse_helm_version(stdout, stderr)
    except HelmVersionError as exc:
        raise TaskFailure(f"Could not read the helm client version: {exc}", **run) from exc
    # Helm 2 exits non-zero when Tiller cannot be reached; its client line is still valid.
    if rc != 0 and not (info.client_major == HELM_WITH_TILLER and info.tiller_error):
        raise TaskFailure(f"'{run['command']}' failed with exit code {rc}", **run)
    return info, run


def read_tiller(params):
    """Tiller as seen by the Kubernetes API: presence, readiness, image and version."""
    namespace = params["tiller_namespace"]
    deployments = NamespacedResource(dynamic_client(params), "apps/v1", "deployments")
    try:
        deployment = deployments.read(namespace, TILLER_DEPLOYMENT)
    except ApiException as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return {"present": False, "ready": False, "image": None, "version": None}
        raise TaskFailure(
            f"Could not read Deployment {namespace}/{TILLER_DEPLOYMENT}: "
            f"{describe_api_error(exc)}. Check tiller_namespace and the credentials' "
            "permission to get deployments there."
        ) from exc
    pod_spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    tiller = next(
        (c for c in containers if c.get("name") == "tiller"), containers[0] if containers else None
    )
    image = tiller.get("image") if tiller else None
    ready_replicas = (deployment.get("status") or {}).get("readyReplicas") or 0
    return {
        "present": True,
        "ready": ready_replicas >= 1,
        "ready_replicas": ready_replicas,
        "image": image,
        "version": image_tag_version(image) if image else None,
    }


def check(params, info, tiller):
    """Apply the version and Tiller policy: (failures, warnings), sentences each."""
    failures, warnings = [], []
    client = info.client
    minimum_text = params["min_version"]
    if minimum_text:
        minimum = parse_semver(minimum_text)
        if client < minimum:
            failures.append(
                f"helm client {client} is older than min_version {minimum}; install Helm "
                f">= {minimum} or set binary_path to one"
            )
    server = tiller["version"] if tiller and tiller["version"] else info.server
    if (
        client.major == HELM_WITH_TILLER
        and server
        and (server.major, server.minor) != (client.major, client.minor)
    ):
        failures.append(
            f"Helm 2 client {client} and Tiller {server} differ in minor version, which Helm 2 "
            "refuses; use a client of Tiller's minor version or upgrade Tiller to match"
        )
    namespace = params["tiller_namespace"]
    where = f"Deployment {namespace}/{TILLER_DEPLOYMENT}"
    if params["tiller"] == "present" and tiller is not None:
        if not tiller["present"]:
            failures.append(
                f"Tiller is required (tiller=present) but {where} does not exist; install it "
                "(legacy mode) or set tiller_namespace to where it runs"
            )
        elif not tiller["ready"]:
            failures.append(f"Tiller is required (tiller=present) but {where} has no ready replica")
    if params["tiller"] == "absent" and tiller is not None and tiller["present"]:
        message = (
            f"Tiller found ({where}, image {tiller['image']}) although tiller=absent; Helm "
            f"{client.major} does not use it and it is an unauthenticated cluster-admin "
            "endpoint: remove it"
        )
        (failures if params["fail_on_leftover_tiller"] else warnings).append(message)
    return failures, warnings


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        binary_path={"type": "path"},
        min_version={"type": "str"},
        tiller={"type": "str", "choices": ["absent", "present", "any"], "default": "any"},
        fail_on_leftover_tiller={"type": "bool", "default": False},
        tiller_namespace={"type": "str", "default": "kube-system"},
    )
    return spec


ARGUMENT_RULES: dict = {}


def run(params, task):
    """The module's work (also run in-process by the action plugin): the result, or TaskFailure."""
    if params["min_version"]:
        try:
            parse_semver(params["min_version"])
        except HelmVersionError as exc:
            raise TaskFailure(
                f"min_version={params['min_version']!r} is not a version; use a form "
                "such as 3.8.0 or v4.0.0"
            ) from exc

    binary = find_binary(params["binary_path"], "helm")
    info, run_info = run_helm_version(params, task, binary)
    tiller = read_tiller(params) if params["tiller"] != "any" else None
    failures, warnings = check(params, info, tiller)

    server = tiller["version"] if tiller and tiller["version"] else info.server
    result = dict(
        changed=False,
        client_version=str(info.client),
        client_major=info.client_major,
        kube_client_version=info.kube_client_version,
        output_format=info.output_format,
        server_version=str(server) if server else None,
        tiller_present=tiller["present"] if tiller else None,
        tiller_ready=tiller["ready"] if tiller else None,
        tiller_image=tiller["image"] if tiller else None,
        tiller_error=info.tiller_error,
        compatible=not failures,
        reasons=failures + warnings,
        binary_path=binary,
        command=run_info["command"],
        stdout=run_info["stdout"],
        stderr=run_info["stderr"],
    )
    for warning in warnings:
        task.warn(warning)
    if failures:
        raise TaskFailure("; ".join(failures), **result)
    return result


def main():
    module = K8sModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        check_k8s=False,
        check_pyyaml=False,
        **ARGUMENT_RULES,
    )
    run_as_module(module, run)


if __name__ == "__main__":
    main()
