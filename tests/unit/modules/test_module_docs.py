"""What our modules' DOCUMENTATION, EXAMPLES and RETURN promise beyond ansible-test.

ansible-test sanity's validate-modules (run on the built collection by
tests/collection) compares the documented options with the argument spec and checks
the RETURN schema. Here: our own policy (check mode declared, requirements listed),
EXAMPLES that call the module by FQCN with documented options only, a real result
with exactly the documented keys, and ansible-doc rendering the modules by FQCN.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.dask_gke.core.plugins.module_utils import task_runner
from ansible_collections.dask_gke.core.plugins.modules import (
    helm_release_info,
    helm_tiller_version,
    wait_for_lb_ip,
    wait_for_nodes,
    wait_for_rollout,
)

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"
MODULES = {
    "helm_release_info": helm_release_info,
    "helm_tiller_version": helm_tiller_version,
    "wait_for_lb_ip": wait_for_lb_ip,
    "wait_for_nodes": wait_for_nodes,
    "wait_for_rollout": wait_for_rollout,
}


@functools.cache
def documented(name):
    """The module's DOCUMENTATION (fragments merged), EXAMPLES and RETURN, as ansible-doc
    reads them: the collection's own doc fragments resolve only through Ansible's
    collection loader, which this test process does not run."""
    run = subprocess.run(
        [str(ANSIBLE_DOC), "--json", f"dask_gke.core.{name}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    entry = json.loads(run.stdout)[f"dask_gke.core.{name}"]
    return entry["doc"], entry["examples"], entry["return"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_documentation_declares_attributes_and_requirements(name):
    doc, _, _ = documented(name)
    assert doc["module"] == name
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "none"
    assert doc["requirements"]
    for option, entry in doc["options"].items():
        assert entry.get("description"), f"{option} has no description"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_examples_use_only_documented_options(name):
    doc, examples, _ = documented(name)
    tasks = yaml.safe_load(examples)
    assert [task for task in tasks if name in task] == [], "EXAMPLES call modules by FQCN"
    calls = [task[f"dask_gke.core.{name}"] for task in tasks if f"dask_gke.core.{name}" in task]
    assert calls, "EXAMPLES should call the module"
    allowed = set(doc["options"])
    for entry in doc["options"].values():
        allowed.update(entry.get("aliases", []))
    for call in calls:
        assert set(call) <= allowed, set(call) - allowed
    for task in tasks:
        assert task.get("name"), "every example task is named"


def test_helm_tiller_version_returns_the_documented_keys(run_module, monkeypatch):
    stdout = 'version.BuildInfo{Version:"v3.2.1", GitCommit:"", GitTreeState:"", GoVersion:""}'
    monkeypatch.setattr(
        basic.AnsibleModule, "run_command", lambda self, argv, **kw: (0, stdout, "")
    )
    monkeypatch.setattr(task_runner, "_get_bin_path", lambda name: "/bin/helm")
    _, result, _ = run_module(helm_tiller_version.main, {})
    _, _, returns = documented("helm_tiller_version")
    assert set(returns) == set(result) - {"changed"}


def test_helm_release_info_returns_the_documented_keys(run_module, monkeypatch):
    history = '[{"revision": 2, "status": "deployed", "chart": "dask-2024.1.1", "app_version": ""}]'
    answers = iter([(0, history, ""), (0, '{"worker": {"replicas": 3}}', "")])
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: next(answers))
    monkeypatch.setattr(task_runner, "_get_bin_path", lambda name: "/bin/helm")
    outcome, result, _ = run_module(
        helm_release_info.main, {"release_name": "dask", "release_namespace": "dask"}
    )
    _, _, returns = documented("helm_release_info")
    assert outcome == "exit"
    assert set(returns) == set(result) - {"changed"}


def test_wait_for_nodes_returns_the_documented_keys(run_module, monkeypatch):
    nodes = {"metadata": {"resourceVersion": "1"}, "items": []}
    monkeypatch.setattr(wait_for_nodes, "dynamic_client", lambda params: None)
    monkeypatch.setattr(
        wait_for_nodes.ClusterResource, "list", lambda self, **kw: nodes, raising=True
    )
    outcome, result, _ = run_module(wait_for_nodes.main, {"label_selector": "a=b"}, check_mode=True)
    _, _, returns = documented("wait_for_nodes")
    assert outcome == "exit"
    assert set(returns) == set(result) - {"changed"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_ansible_doc_renders(name):
    run = subprocess.run(
        [str(ANSIBLE_DOC), f"dask_gke.core.{name}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert f"MODULE dask_gke.core.{name}" in run.stdout.replace("\x1b[1m", "").replace(
        "\x1b[0m", ""
    )
    assert run.stderr == "", run.stderr  # ansible-test's ansible-doc check fails on any
