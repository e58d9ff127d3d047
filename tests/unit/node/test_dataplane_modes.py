"""Whether a sandbox gets real nodes (sandbox/node/dataplane.py): auto, on, off, and why not."""

import pytest

from sandbox.node import dataplane
from sandbox.node.commands import NodeError
from sandbox.node.dataplane import DataPlane


@pytest.fixture
def capable(monkeypatch):
    """Pretend this machine can host a real node (the answer of real_node_capability)."""
    monkeypatch.setattr(dataplane, "real_node_capability", lambda bin_dir: None)


def test_without_root_the_reason_is_one_line_naming_root(monkeypatch, tmp_path):
    monkeypatch.setattr(dataplane.os, "geteuid", lambda: 1000)
    reason = dataplane.real_node_capability(tmp_path)
    assert reason.startswith("not root")
    assert "\n" not in reason


def test_missing_node_tools_are_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(dataplane.os, "geteuid", lambda: 0)
    monkeypatch.setattr(dataplane.shutil, "which", lambda name: f"/usr/bin/{name}")
    reason = dataplane.real_node_capability(tmp_path / "empty-bin")
    assert reason.startswith("missing ")
    assert str(tmp_path / "empty-bin" / "kubelet") in reason
    assert "make sandbox-tools" in reason


def test_auto_falls_back_to_fake_nodes_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(dataplane, "real_node_capability", lambda bin_dir: "no namespaces here")
    plane = DataPlane(tmp_path, tmp_path, "auto")
    try:
        assert plane.real_node_reason == "no namespaces here"
        assert plane.snapshot()["realNodeDisabled"] == "no namespaces here"
    finally:
        plane.shutdown()


def test_on_refuses_a_machine_that_cannot(monkeypatch, tmp_path):
    monkeypatch.setattr(dataplane, "real_node_capability", lambda bin_dir: "no namespaces here")
    with pytest.raises(
        NodeError, match="=on but this machine cannot host a real node: no namespaces"
    ):
        DataPlane(tmp_path, tmp_path, "on")


def test_off_and_the_runtime_switch(capable, tmp_path):
    plane = DataPlane(tmp_path, tmp_path, "off")
    try:
        assert "DASK_GKE_SANDBOX_REAL_NODE=off" in plane.real_node_reason
        plane.enable_real_nodes(True)
        assert plane.real_node_reason is None
        plane.enable_real_nodes(False)
        assert plane.real_node_reason == "switched off (PUT /real-node)"
    finally:
        plane.shutdown()


def test_an_unknown_mode_names_the_variable_and_the_choices(tmp_path):
    with pytest.raises(NodeError, match=r"DASK_GKE_SANDBOX_REAL_NODE='maybe': use auto, on or off"):
        DataPlane(tmp_path, tmp_path, "maybe")
