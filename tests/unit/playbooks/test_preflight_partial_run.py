"""The preflight play stops a partial run (--tags upgrade) that has no kubeconfig.

Runs the real playbook against the documented GKE inventory: the preflight makes
no API call, so nothing here reaches a cloud.
"""

from __future__ import annotations

import pytest
from controller import ansible_playbook


def preflight(tmp_path, *args):
    return ansible_playbook(tmp_path, "-i", "inventories/gke", "playbooks/preflight.yml", *args)


@pytest.mark.parametrize("tags", ["upgrade", "dask", "verify"])
def test_partial_run_without_a_kubeconfig_stops_with_the_fix(tmp_path, tags):
    missing = tmp_path / "nowhere" / "kubeconfig"
    run = preflight(tmp_path, "--tags", tags, "-e", f"gke_cluster_kubeconfig_path={missing}")
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"its kubeconfig {missing} does not exist" in run.stdout
    assert "Run the full `ansible-playbook deploy.yml` first" in run.stdout


def test_partial_run_with_the_kubeconfig_of_an_earlier_deploy_passes(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    run = preflight(
        tmp_path, "--tags", "upgrade", "-e", f"gke_cluster_kubeconfig_path={kubeconfig}"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "failed=0" in run.stdout


def test_full_run_needs_no_earlier_kubeconfig(tmp_path):
    missing = tmp_path / "nowhere" / "kubeconfig"
    run = preflight(tmp_path, "-e", f"gke_cluster_kubeconfig_path={missing}")
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_run_without_the_cluster_role_does_not_judge_its_inputs(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    unused = ["-e", f"gke_cluster_kubeconfig_path={kubeconfig}", "-e", "gke_cluster_node_count=0"]
    upgrade = preflight(tmp_path, "--tags", "upgrade", *unused)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    # The same value fails the preflight alone, and a full run.
    for args in (["--tags", "preflight"], []):
        run = preflight(tmp_path, *args, *unused)
        assert run.returncode == 2, run.stdout + run.stderr
        assert 'gke_cluster_node_count="0" is out of range' in run.stdout
