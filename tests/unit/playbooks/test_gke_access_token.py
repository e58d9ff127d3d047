"""The gke_access_token lookup of the gke_cluster role, without network.

The lookup is run through Ansible itself (options come from its documentation);
the credential helpers are tested directly with google-auth mocked.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from ansible.errors import AnsibleLookupError

REPO = Path(__file__).resolve().parents[3]
PLUGIN_DIR = REPO / "roles/gke_cluster/lookup_plugins"
spec = importlib.util.spec_from_file_location(
    "gke_access_token", PLUGIN_DIR / "gke_access_token.py"
)
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
ANSIBLE = Path(sys.executable).parent / "ansible"


def lookup(expression: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_LOOKUP_PLUGINS=str(PLUGIN_DIR), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [
            str(ANSIBLE),
            "localhost",
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={{{{ {expression} }}}}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=120,
    )


def test_accesstoken_returns_the_given_token():
    result = lookup("lookup('gke_access_token', 'accesstoken', access_token='tok-123')")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "msg: tok-123" in result.stdout


def test_accesstoken_without_token_names_the_variable():
    result = lookup("lookup('gke_access_token', 'accesstoken')")
    assert result.returncode != 0
    assert "gke_cluster_access_token" in result.stdout + result.stderr


def test_unknown_auth_kind_is_refused():
    result = lookup("lookup('gke_access_token', 'password')")
    assert result.returncode != 0
    assert "unsupported auth kind 'password'" in result.stdout + result.stderr


def test_serviceaccount_without_file_names_the_variable():
    with pytest.raises(AnsibleLookupError, match="gke_cluster_service_account_file"):
        plugin._credentials("serviceaccount", "", ["scope"])


def test_serviceaccount_reads_the_key_file_with_the_scopes():
    credentials_class = plugin.google.oauth2.service_account.Credentials
    with mock.patch.object(credentials_class, "from_service_account_file") as loader:
        assert plugin._credentials("serviceaccount", "/keys/sa.json", ["scope"]) is (
            loader.return_value
        )
    loader.assert_called_once_with("/keys/sa.json", scopes=["scope"])


def test_application_uses_default_credentials():
    credentials = mock.Mock()
    with mock.patch.object(
        plugin.google.auth, "default", return_value=(credentials, "p")
    ) as default:
        assert plugin._credentials("application", None, ["scope"]) is credentials
    default.assert_called_once_with(scopes=["scope"])
