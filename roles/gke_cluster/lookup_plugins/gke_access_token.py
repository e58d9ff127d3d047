# Copyright: dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lookup returning a short-lived Google OAuth access token."""

from __future__ import annotations

DOCUMENTATION = r"""
name: gke_access_token
short_description: Short-lived Google access token from the same credentials as google.cloud
version_added: "1.0.0"
description:
  - Returns an OAuth 2.0 access token for the credentials the google.cloud
    modules use, so that a kubeconfig in bearer-token mode and direct GKE API
    reads (operations) authenticate exactly as the modules do.
  - Runs on the control node. C(accesstoken) returns the given token unchanged
    and contacts nobody; the other kinds ask Google's token endpoint.
options:
  _terms:
    description:
      - The auth kind, C(accesstoken), C(serviceaccount), C(application) or C(machineaccount).
    required: true
    type: list
    elements: str
  access_token:
    description: The token itself, for C(accesstoken).
    type: str
  service_account_file:
    description: Path of a service-account JSON key, for C(serviceaccount).
    type: str
  scopes:
    description: OAuth scopes requested.
    type: list
    elements: str
    default: [https://www.googleapis.com/auth/cloud-platform]
requirements:
  - google-auth
"""

EXAMPLES = r"""
- name: Get a token for the kubeconfig
  ansible.builtin.set_fact:
    token: "{{ lookup('gke_access_token', 'serviceaccount', service_account_file='/etc/sa.json') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: One access token.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    import google.auth
    import google.auth.compute_engine
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.service_account

    HAS_GOOGLE_AUTH = True
except ImportError:
    HAS_GOOGLE_AUTH = False


def _credentials(auth_kind: str, service_account_file: str | None, scopes: list[str]):
    if auth_kind == "serviceaccount":
        if not service_account_file:
            raise AnsibleLookupError(
                "auth kind 'serviceaccount' needs service_account_file "
                "(set gke_cluster_service_account_file to the JSON key's path)"
            )
        return google.oauth2.service_account.Credentials.from_service_account_file(
            service_account_file, scopes=scopes
        )
    if auth_kind == "application":
        credentials, _project = google.auth.default(scopes=scopes)
        return credentials
    if auth_kind == "machineaccount":
        return google.auth.compute_engine.Credentials()
    raise AnsibleLookupError(
        f"unsupported auth kind {auth_kind!r}: use accesstoken, serviceaccount, "
        "application or machineaccount"
    )


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("gke_access_token takes exactly one term: the auth kind")
        auth_kind = terms[0]
        if auth_kind == "accesstoken":
            token = self.get_option("access_token")
            if not token:
                raise AnsibleLookupError(
                    "auth kind 'accesstoken' needs access_token (set gke_cluster_access_token)"
                )
            return [token]
        if not HAS_GOOGLE_AUTH:
            raise AnsibleLookupError(
                "the google-auth Python package is required on the control node"
            )
        credentials = _credentials(
            auth_kind, self.get_option("service_account_file"), self.get_option("scopes")
        )
        try:
            credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as error:
            raise AnsibleLookupError(
                f"cannot get a Google access token ({auth_kind}): {error}"
            ) from error
        return [credentials.token]
