"""The real node's generated configuration (sandbox/node/runtime.py): the facts this
machine kind needs (REAL-NODE-NOTES, verified in sandbox/README.md)."""

import json
import re
import tomllib
from pathlib import Path

from sandbox.node import runtime
from sandbox.node.netplan import NodeNetwork

NET = NodeNetwork(3)


def containerd() -> dict:
    return tomllib.loads(
        runtime.containerd_config(NET, Path("/r/root"), Path("/run/x"), Path("/c/net.d"))
    )


def test_containerd_restricts_oom_score_adj_and_keeps_everything_under_our_dirs():
    config = containerd()
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    # Root here lacks CAP_SYS_RESOURCE: without this every pod sandbox fails.
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == runtime.PAUSE_IMAGE
    assert (config["root"], config["state"]) == ("/r/root", "/run/x")
    assert config["grpc"]["address"] == "/run/x/containerd.sock"
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": str(runtime.CNI_BIN_DIR), "conf_dir": "/c/net.d"}
    # The opt plugin would write to /opt/containerd.
    assert "io.containerd.internal.v1.opt" in config["disabled_plugins"]


def test_kubelet_runs_on_cgroup_v1_without_swap_checks_in_its_own_cgroup_root():
    config = runtime.kubelet_config(NET, Path("/run/x/c.sock"), Path("/r/resolv"), Path("/r/s"))
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["failSwapOn"] is False
    assert config["cgroupRoot"] == NET.cgroup_root
    assert config["address"] == NET.node_ip  # never loopback: the kubelet refuses it
    assert config["clusterDNS"] == [NET.gateway_ip]
    assert config["containerRuntimeEndpoint"] == "unix:///run/x/c.sock"
    assert config["readOnlyPort"] == 0


def test_pods_get_the_bridge_without_masquerading():
    plugin = runtime.cni_config(NET, Path("/ipam"))["plugins"][0]
    assert plugin["type"] == "bridge" and plugin["bridge"] == NET.bridge
    assert plugin["ipMasq"] is False
    assert plugin["ipam"]["ranges"] == [[{"subnet": NET.pod_cidr, "gateway": NET.gateway_ip}]]
    assert plugin["ipam"]["dataDir"] == "/ipam"
    json.dumps(plugin)  # CNI reads JSON


def test_kube_proxy_uses_nftables_and_leaves_machine_wide_sysctls_alone():
    config = runtime.kube_proxy_config(NET, "gke-n", Path("/k"))
    assert config["mode"] == "nftables"
    assert config["hostnameOverride"] == "gke-n"
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0


def test_coredns_answers_cluster_names_and_the_index_and_forwards_nothing():
    corefile = runtime.corefile(NET, Path("/k"), "pypi.dask-gke.internal")
    assert not re.search(r"^\s*forward\b", corefile, re.MULTILINE)  # no plugin line
    assert f"{NET.gateway_ip} pypi.dask-gke.internal" in corefile
    assert corefile.count(f"bind {NET.gateway_ip}") == 3
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa" in corefile
