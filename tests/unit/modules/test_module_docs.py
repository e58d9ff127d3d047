"""DOCUMENTATION, EXAMPLES and RETURN of our modules agree with their code.

Like ansible-test's validate-modules: the documented options (with the
kubernetes.core.k8s_auth_options fragment merged) must equal the argument spec in
name, type, default, choices, aliases, elements, required, no_log-free docs and
sub-options, and EXAMPLES must only use documented options.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible.plugins.loader import fragment_loader
from ansible.utils.plugin_docs import get_docstring
from ansible_collections.dask_gke.core.plugins.modules import (
    helm_tiller_version,
    wait_for_lb_ip,
    wait_for_rollout,
)

REPO = Path(__file__).resolve().parents[3]
MODULES = {
    "helm_tiller_version": helm_tiller_version,
    "wait_for_lb_ip": wait_for_lb_ip,
    "wait_for_rollout": wait_for_rollout,
}


def documented(name):
    doc, examples, returns, _ = get_docstring(
        str(REPO / "library" / f"{name}.py"), fragment_loader, is_module=True
    )
    return doc, examples, returns


def normalise_spec(spec):
    """An argument spec entry in the shape the docs use."""
    result = {}
    for option, entry in spec.items():
        result[option] = {
            "type": entry.get("type", "str"),
            "default": entry.get("default"),
            "choices": entry.get("choices"),
            "aliases": sorted(entry.get("aliases", [])),
            "elements": entry.get("elements"),
            "required": entry.get("required", False),
            "suboptions": normalise_spec(entry["options"]) if "options" in entry else None,
        }
    return result


def normalise_doc(options):
    result = {}
    for option, entry in options.items():
        result[option] = {
            "type": entry.get("type", "str"),
            "default": entry.get("default"),
            "choices": list(entry["choices"]) if "choices" in entry else None,
            "aliases": sorted(entry.get("aliases", [])),
            "elements": entry.get("elements"),
            "required": entry.get("required", False),
            "suboptions": normalise_doc(entry["suboptions"]) if "suboptions" in entry else None,
        }
    return result


@pytest.mark.parametrize("name", sorted(MODULES))
def test_documented_options_match_the_argument_spec(name):
    doc, _, _ = documented(name)
    assert normalise_doc(doc["options"]) == normalise_spec(MODULES[name].argument_spec())


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
    calls = [task[name] for task in tasks if name in task]
    assert calls, "EXAMPLES should call the module"
    allowed = set(doc["options"])
    for entry in doc["options"].values():
        allowed.update(entry.get("aliases", []))
    for call in calls:
        assert set(call) <= allowed, set(call) - allowed
    for task in tasks:
        assert task.get("name"), "every example task is named"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_return_documents_every_key(name):
    _, _, returns = documented(name)
    for key, entry in returns.items():
        assert {"description", "returned", "type"} <= set(entry), key


def test_helm_tiller_version_returns_the_documented_keys(run_module, monkeypatch):
    stdout = 'version.BuildInfo{Version:"v3.2.1", GitCommit:"", GitTreeState:"", GoVersion:""}'
    monkeypatch.setattr(
        basic.AnsibleModule, "run_command", lambda self, argv, **kw: (0, stdout, "")
    )
    monkeypatch.setattr(
        basic.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/bin/helm"
    )
    _, result, _ = run_module(helm_tiller_version.main, {})
    _, _, returns = documented("helm_tiller_version")
    assert set(returns) == set(result) - {"changed"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_ansible_doc_renders(name):
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    run = subprocess.run(
        [str(ansible_doc), "-M", str(REPO / "library"), name],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert f"MODULE {name}" in run.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
