"""The Tiller objects helm_tiller renders, with variables given the way users give them.

Renders roles/helm_tiller/templates/tiller-objects.yml.j2 through a real
ansible-playbook run on the controller (no cluster): `-e name=value` makes strings,
so `-e helm_tiller_tls_enabled=false` is the string "false".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from controller import REPO, ansible_playbook


def render(tmp_path: Path, *extra_vars: str) -> list[dict]:
    """The rendered objects (helm_tiller's defaults and vars, then -e)."""
    out = tmp_path / "objects.json"
    role = REPO / "roles" / "helm_tiller"
    play = [
        {
            "name": "Render the Tiller objects",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": "Write them",
                    "ansible.builtin.copy": {
                        "dest": str(out),
                        "mode": "0600",
                        "content": "{{ lookup('ansible.builtin.template', '"
                        + str(role / "templates" / "tiller-objects.yml.j2")
                        + "') | ansible.builtin.from_yaml_all | list | to_json }}",
                    },
                }
            ],
        }
    ]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    args = [arg for value in extra_vars for arg in ("-e", value)]
    run = ansible_playbook(tmp_path, "-i", "localhost,", "-c", "local", str(playbook), *args)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


def where(objects: list[dict], kind: str, name: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]


def tiller_pod(objects: list[dict]) -> dict:
    (deployment,) = where(objects, "Deployment", "tiller-deploy")
    return deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize("value", ["false", "no"])
def test_tls_disabled_as_a_string_mounts_no_secret(tmp_path, value):
    pod = tiller_pod(render(tmp_path, f"helm_tiller_tls_enabled={value}"))
    assert "volumes" not in pod, pod.get("volumes")
    container = pod["containers"][0]
    assert "volumeMounts" not in container
    assert [e["name"] for e in container["env"]] == ["TILLER_NAMESPACE", "TILLER_HISTORY_MAX"]


def test_tls_enabled_mounts_the_secret_and_turns_tls_on(tmp_path):
    pod = tiller_pod(render(tmp_path, "helm_tiller_tls_enabled=true"))
    assert pod["volumes"] == [{"name": "tiller-certs", "secret": {"secretName": "tiller-secret"}}]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["TILLER_TLS_ENABLE"] == env["TILLER_TLS_VERIFY"] == "1"


def test_namespace_scope_binds_a_role_in_each_managed_namespace_only(tmp_path):
    objects = render(
        tmp_path,
        "helm_tiller_rbac_scope=namespace",
        json.dumps({"helm_tiller_managed_namespaces": ["dask", "other"]}),
    )
    assert where(objects, "ClusterRoleBinding", "tiller") == []
    managers = where(objects, "RoleBinding", "tiller-manager")
    assert sorted(b["metadata"]["namespace"] for b in managers) == ["dask", "other"]
    assert all(b["roleRef"]["name"] == "tiller-manager" for b in managers)
