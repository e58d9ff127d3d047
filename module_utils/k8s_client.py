# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes client set-up for the dask-gke modules.

No auth layer of our own: the connection options, their K8S_AUTH_* environment
fallbacks, kubeconfig handling and secret redaction all come from
kubernetes.core (AUTH_ARG_SPEC, AnsibleK8SModule, get_api_client). This file only
hands the modules a plain ``kubernetes.client.ApiClient`` for the typed APIs and
turns API errors into one-line messages.
"""

from __future__ import annotations

import copy
import json

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:  # reported by AnsibleK8SModule.requires("kubernetes")
    ApiException = None


def connection_argument_spec() -> dict:
    """kubernetes.core's connection options (kubeconfig, context, host, api_key, ...)."""
    return copy.deepcopy(AUTH_ARG_SPEC)


class K8sModule(AnsibleK8SModule):
    """AnsibleK8SModule plus the AnsibleModule helpers our modules also use."""

    def run_command(self, *args, **kwargs):
        return self._module.run_command(*args, **kwargs)

    def get_bin_path(self, *args, **kwargs):
        return self._module.get_bin_path(*args, **kwargs)


def api_client(module: K8sModule):
    """A kubernetes.client.ApiClient configured from the module's connection options.

    Fails the module with a message naming the connection options when the
    configuration cannot be loaded or the API server cannot be reached.
    """
    module.requires("kubernetes")
    try:
        k8s_client = get_api_client(module=module)
    except Exception as exc:  # config, TLS and socket errors all end up here
        module.fail_json(
            msg=(
                f"Could not connect to the Kubernetes API: {describe_api_error(exc)}. "
                "Check the kubeconfig, context, host and api_key options "
                "(or their K8S_AUTH_* environment variables)."
            )
        )
    # K8SClient -> K8SDynamicClient -> the ApiClient it was built on.
    return k8s_client.client.client


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
