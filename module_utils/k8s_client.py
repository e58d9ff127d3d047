# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes client set-up for the dask-gke modules.

No auth layer of our own: the connection options, their K8S_AUTH_* environment
fallbacks, kubeconfig handling and secret redaction all come from
kubernetes.core (AUTH_ARG_SPEC, AnsibleK8SModule, get_api_client). This file
hands the modules kubernetes.core's dynamic client, reads, lists and watches
through it by path as plain JSON (NamespacedResource, ClusterResource), and turns API errors
into one-line messages.

Not the typed API classes: with the kubernetes library 37, importing CoreV1Api
takes about 0.5 s and AppsV1Api 0.35 s, paid by every module run, and the
modules want dicts anyway.
"""

from __future__ import annotations

import copy
import json

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import TaskFailure
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

try:
    from kubernetes.client.exceptions import ApiException

    HAS_KUBERNETES = True
except ImportError:  # reported by AnsibleK8SModule.requires("kubernetes") or dynamic_client
    ApiException = None
    HAS_KUBERNETES = False


def connection_argument_spec() -> dict:
    """kubernetes.core's connection options (kubeconfig, context, host, api_key, ...)."""
    return copy.deepcopy(AUTH_ARG_SPEC)


class K8sModule(AnsibleK8SModule):
    """kubernetes.core's module class (library checks, kubeconfig redaction) with run_command."""

    def run_command(self, *args, **kwargs):
        return self._module.run_command(*args, **kwargs)


def dynamic_client(params: dict):
    """kubernetes.core's dynamic client, configured from the connection options in params.

    The options left unset fall back to their K8S_AUTH_* environment variables
    (kubernetes.core reads os.environ). Raises TaskFailure naming the connection
    options when the configuration cannot be loaded or the API server cannot be
    reached, and when the kubernetes library is missing.
    """
    if not HAS_KUBERNETES:
        raise TaskFailure(missing_required_lib("kubernetes"))
    auth = {name: params.get(name) for name in AUTH_ARG_SPEC}
    try:
        k8s_client = get_api_client(**auth)
    except Exception as exc:  # config, TLS and socket errors all end up here
        raise TaskFailure(
            f"Could not connect to the Kubernetes API: {describe_api_error(exc)}. "
            "Check the kubeconfig, context, host and api_key options "
            "(or their K8S_AUTH_* environment variables)."
        ) from exc
    # K8SClient -> the K8SDynamicClient it wraps (request() sends any path).
    return k8s_client.client


class NamespacedResource:
    """One kind of namespaced object, read, listed and watched as plain JSON.

    Errors are kubernetes' ApiException (the dynamic client's subclasses).
    """

    def __init__(self, client, group_version: str, plural: str):
        self.client = client
        self.base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        self.plural = plural

    def path(self, namespace: str, name: str | None = None) -> str:
        path = f"{self.base}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path

    def read(self, namespace: str, name: str, **params) -> dict:
        response = self.client.request("get", self.path(namespace, name), serialize=False, **params)
        return json.loads(response.data)

    def list(self, namespace: str, **params):
        """The list as a dict; with watch=True, the streaming response (for watch.Watch)."""
        return list_or_watch(self.client, self.path(namespace), params)


class ClusterResource:
    """One kind of cluster-scoped object (Nodes, ...), listed and watched as plain JSON.

    NamespacedResource's list without the namespace; errors are ApiException too.
    """

    def __init__(self, client, group_version: str, plural: str):
        self.client = client
        self.base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        self.plural = plural

    def path(self) -> str:
        return f"{self.base}/{self.plural}"

    def list(self, **params):
        """The list as a dict; with watch=True, the streaming response (for watch.Watch)."""
        return list_or_watch(self.client, self.path(), params)


def list_or_watch(client, path: str, params: dict):
    """GET a collection: the list as a dict, or with watch=True the streaming response."""
    params.pop("_preload_content", None)  # Watch passes it; responses always stream
    response = client.request("get", path, serialize=False, **params)
    return response if params.get("watch") else json.loads(response.data)


def describe_api_error(exc: Exception) -> str:
    """A short text for an API error: status, reason and the server's message."""
    if ApiException is not None and isinstance(exc, ApiException):
        message = ""
        try:
            message = json.loads(exc.body or "{}").get("message", "")
        except (TypeError, ValueError, AttributeError):
            message = str(exc.body or "")
        text = f"HTTP {exc.status} {exc.reason}"
        return f"{text}: {message}" if message else text
    return f"{type(exc).__name__}: {exc}"
