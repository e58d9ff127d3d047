"""The preflight play and the documented GKE inventory, run for real without any network:
what no role owns (Helm client, gke-gcloud-auth-plugin) and the inventory's placeholder.

Stand-in binaries on a PATH of the test's own; the GKE inventory's variables otherwise.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.unit.sandbox import commands

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def stand_in(bin_dir: Path, name: str, output: str, code: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {code}\n")
    script.chmod(0o755)


@pytest.fixture
def tools(tmp_path) -> Path:
    """A bin directory with a helm and a recent gke-gcloud-auth-plugin."""
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "helm", 'version.BuildInfo{Version:"v4.3.1"}')
    stand_in(bin_dir, "gke-gcloud-auth-plugin", "Kubernetes v1.30.5+1ab2c3d")
    return bin_dir


def play(tmp_path, bin_dir: Path, playbook: str = "playbooks/preflight.yml", *args):
    env = {
        # Only the stand-ins and the venv: the machine may have a real plugin or helm.
        "PATH": f"{bin_dir}:{ANSIBLE_PLAYBOOK.parent}",
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        # Any proxy would do: nothing here may try to reach a Google API.
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    run = commands.run(
        [ANSIBLE_PLAYBOOK, "-i", "inventories/gke", playbook, *args], env=env, cwd=REPO
    )
    return run, " ".join((run.stdout + run.stderr).split())


def test_the_preflight_passes_with_the_tools_in_place(tmp_path, tools):
    run, output = play(tmp_path, tools)
    assert run.returncode == 0, output
    assert "failed=0" in output


@pytest.mark.parametrize(
    ("missing", "args", "messages"),
    [
        pytest.param(
            "helm",
            [],
            ['helm_tiller_helm_binary="helm" is not on PATH'],
            id="a-missing-helm-names-the-variable",
        ),
        pytest.param(
            None,
            ["-e", "helm_tiller_helm_binary=/no/helm"],
            ['helm_tiller_helm_binary="/no/helm" is not a file'],
            id="a-helm-path-that-is-no-file-is-named",
        ),
        pytest.param(
            "gke-gcloud-auth-plugin",
            [],
            [
                "gke_cluster_kubeconfig_auth=exec needs gke-gcloud-auth-plugin",
                "gcloud components install gke-gcloud-auth-plugin",
            ],
            id="exec-mode-needs-the-auth-plugin",
        ),
    ],
)
def test_a_missing_tool_stops_the_run_saying_what_to_do(tmp_path, tools, missing, args, messages):
    if missing:
        (tools / missing).unlink()
    run, output = play(tmp_path, tools, "playbooks/preflight.yml", *args)
    assert run.returncode == 2, output
    for message in messages:
        assert message in output


@pytest.mark.parametrize(
    ("output", "code", "shown"),
    [
        ("Kubernetes v1.24.2-alpha", 0, "1.24.2"),
        ("flag provided but not defined", 2, "no --version"),
    ],
)
def test_an_auth_plugin_without_adc_support_is_too_old(tmp_path, tools, output, code, shown):
    stand_in(tools, "gke-gcloud-auth-plugin", output, code)
    run, text = play(tmp_path, tools)
    assert run.returncode == 2, text
    assert f"is too old ({shown})" in text
    assert "--use_application_default_credentials" in text


def test_each_collection_below_its_minimum_is_named_with_both_versions(tmp_path, tools):
    minimums = {"google.cloud": "0.1.0", "kubernetes.core": "99.0.0"}
    run, output = play(
        tmp_path,
        tools,
        "playbooks/preflight.yml",
        "-e",
        json.dumps({"__preflight_min_collections": minimums}),
    )
    assert run.returncode == 2, output
    assert re.search(
        r"Collection kubernetes\.core \d+\.\d+\.\d+: 99\.0\.0 or newer is needed", output
    )
    assert "Collection google.cloud" not in output


def test_token_mode_needs_no_auth_plugin(tmp_path, tools):
    (tools / "gke-gcloud-auth-plugin").unlink()
    run, output = play(
        tmp_path, tools, "playbooks/preflight.yml", "-e", "gke_cluster_kubeconfig_auth=token"
    )
    assert run.returncode == 0, output


def test_the_sample_inventorys_placeholder_project_fails_before_any_call(tmp_path, tools):
    run, output = play(tmp_path, tools, "deploy.yml")
    assert run.returncode == 2, output
    assert (
        'gke_cluster_project="REPLACE_WITH_YOUR_PROJECT_ID" is not a Google Cloud project id'
        in output
    )
    assert "List the clusters" not in output


def test_the_sample_inventory_takes_a_service_account_key_from_the_environment(tmp_path, tools):
    key = tmp_path / "key.json"
    key.write_text("{}")
    env_run = commands.run(
        [
            Path(sys.executable).parent / "ansible",
            "localhost",
            "-i",
            "inventories/gke",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ gke_cluster_auth_kind }}:{{ gke_cluster_service_account_file }}",
        ],
        env={**os.environ, "GCP_SERVICE_ACCOUNT_FILE": str(key), "ANSIBLE_NOCOLOR": "1"},
        cwd=REPO,
    )
    assert f"serviceaccount:{key}" in env_run.stdout, env_run.stdout + env_run.stderr
