"""End to end: the unmodified google.cloud GKE modules against the emulator, via the proxy."""

import json
import os
import sys
from pathlib import Path

from tests.unit.sandbox.commands import run
from tests.unit.sandbox.conftest import PROJECT, TOKEN

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ZONE = "us-central1-a"
CLUSTER_ID = f"{PROJECT}.{ZONE}.dask"
PLAYBOOK = """
- name: Drive the GKE emulator with google.cloud
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/google.cloud.gcp:
      project: {project}
      auth_kind: accesstoken
      access_token: "{{{{ gke_token }}}}"
  environment:
    HTTPS_PROXY: "http://127.0.0.1:{proxy_port}"
    NO_PROXY: "127.0.0.1,localhost"
    REQUESTS_CA_BUNDLE: "{ca}"
  tasks:
    - name: Create the cluster
      google.cloud.gcp_container_cluster:
        name: dask
        location: {zone}
        initial_node_count: 5
        node_config:
          machine_type: n1-standard-1
      register: created

    - name: Create a node pool
      google.cloud.gcp_container_node_pool:
        name: workers
        cluster:
          name: dask
        location: {zone}
        initial_node_count: 2
        config:
          machine_type: n1-standard-2
      register: pool

    - name: List the node pools
      google.cloud.gcp_container_node_pool_info:
        cluster:
          name: dask
        location: {zone}
      register: pools

    - name: List the clusters
      google.cloud.gcp_container_cluster_info:
        location: {zone}
      register: listed

    - name: Delete the cluster
      google.cloud.gcp_container_cluster:
        name: dask
        location: {zone}
        state: absent
      register: deleted

    - name: Save the results for the test
      ansible.builtin.copy:
        content: >-
          {{{{ {{'created': created, 'pool': pool, 'pools': pools,
          'listed': listed, 'deleted': deleted}} | to_json }}}}
        dest: "{results}"
        mode: "0600"
"""


def test_gcp_container_cluster_create_info_delete(sandbox, tmp_path):
    results = tmp_path / "results.json"
    playbook = tmp_path / "gke.yml"
    playbook.write_text(
        PLAYBOOK.format(
            project=PROJECT,
            proxy_port=sandbox.port_base,
            ca=sandbox.dir / "ca" / "ca.pem",
            zone=ZONE,
            results=results,
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and k != "REQUESTS_CA_BUNDLE"
    }
    env.update({"ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_NOCOLOR": "1"})
    played = run(
        [
            ANSIBLE_PLAYBOOK,
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"gke_token={TOKEN}",
            playbook,
        ],
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert played.returncode == 0, played.stdout[-4000:] + played.stderr[-2000:]

    outcome = json.loads(results.read_text())
    assert outcome["created"]["changed"] is True
    assert outcome["created"]["status"] == "RUNNING"
    assert outcome["created"]["endpoint"].startswith("127.0.0.1:")
    assert outcome["pool"]["status"] == "RUNNING"
    # The cluster module deletes default-pool right after creating the cluster.
    assert [p["name"] for p in outcome["pools"]["resources"]] == ["workers"]
    [listed] = outcome["listed"]["resources"]
    assert listed["name"] == "dask"
    assert listed["currentNodeCount"] == 2
    assert outcome["deleted"]["changed"] is True

    # Emulator state: nothing left, in the service and in the backend.
    state = sandbox.plain.get(f"{sandbox.admin}/state", timeout=5).json()
    assert state["clusters"] == []
    assert [op["operationType"] for op in state["operations"]] == [
        "CREATE_CLUSTER",
        "DELETE_NODE_POOL",
        "CREATE_NODE_POOL",
        "DELETE_CLUSTER",
    ]
    assert all(op["status"] == "DONE" and "error" not in op for op in state["operations"])
    assert (
        "ensure_node_pool",
        CLUSTER_ID,
        "default-pool",
        5,
        "n1-standard-1",
    ) in sandbox.backend.calls
    assert sandbox.backend.list_clusters() == []

    # Request log: the module's calls, in order, without operation polls.
    calls = [
        (e["method"], e["path"].split(f"/v1/projects/{PROJECT}/")[1], e["status"])
        for e in sandbox.requests_log()
        if "/operations/" not in e["path"]
    ]
    assert calls == [
        ("GET", f"locations/{ZONE}/clusters/dask", 404),
        ("POST", f"locations/{ZONE}/clusters", 200),
        ("GET", f"zones/{ZONE}/clusters/dask", 200),  # the operation's targetLink
        ("DELETE", f"locations/{ZONE}/clusters/dask/nodePools/default-pool", 200),
        ("GET", f"zones/{ZONE}/clusters/dask/nodePools/default-pool", 404),
        ("GET", f"locations/{ZONE}/clusters/dask/nodePools/workers", 404),
        ("POST", f"locations/{ZONE}/clusters/dask/nodePools", 200),
        ("GET", f"zones/{ZONE}/clusters/dask/nodePools/workers", 200),
        ("GET", f"locations/{ZONE}/clusters/dask/nodePools", 200),
        ("GET", f"locations/{ZONE}/clusters", 200),
        ("GET", f"locations/{ZONE}/clusters/dask", 200),
        ("DELETE", f"locations/{ZONE}/clusters/dask", 200),
        ("GET", f"zones/{ZONE}/clusters/dask", 404),
    ]
