"""Slots, names and addresses of real nodes (sandbox/node/netplan.py)."""

import ipaddress
import json
import os

import pytest

from sandbox.node import netplan
from sandbox.node.netplan import NodeNetwork, SlotOwner


def owner(tmp_path, cluster="p.z.c", pid=None) -> SlotOwner:
    return SlotOwner(str(tmp_path / "sandbox"), cluster, pid or os.getpid())


def test_slots_are_taken_lowest_first_and_never_twice(tmp_path):
    registry = tmp_path / "slots"
    first = netplan.allocate_slot(owner(tmp_path, "p.z.a"), registry)
    second = netplan.allocate_slot(owner(tmp_path, "p.z.b"), registry)
    assert (first.slot, second.slot) == (1, 2)
    netplan.release_slot(first, registry)
    assert netplan.allocate_slot(owner(tmp_path, "p.z.c"), registry).slot == 1


def test_a_dead_owner_without_namespace_gives_its_slot_back(tmp_path, monkeypatch):
    monkeypatch.setattr(netplan, "netns_exists", lambda slot: False)
    registry = tmp_path / "slots"
    registry.mkdir()
    # A pid that cannot exist (above pid_max), and no namespace (patched above).
    dead = SlotOwner(str(tmp_path / "other"), "p.z.old", 2**22 + 1)
    (registry / "1").write_text(json.dumps(dead.__dict__))
    assert netplan.allocate_slot(owner(tmp_path), registry).slot == 1


def test_a_dead_owner_whose_namespace_remains_keeps_its_slot(tmp_path, monkeypatch):
    monkeypatch.setattr(netplan, "netns_exists", lambda slot: slot == 1)
    registry = tmp_path / "slots"
    registry.mkdir()
    dead = SlotOwner(str(tmp_path / "other"), "p.z.old", 2**22 + 1)
    (registry / "1").write_text(json.dumps(dead.__dict__))
    assert netplan.allocate_slot(owner(tmp_path), registry).slot == 2


def test_a_live_owner_keeps_its_slot(tmp_path):
    registry = tmp_path / "slots"
    netplan.allocate_slot(owner(tmp_path, "p.z.a"), registry)
    assert netplan.allocate_slot(owner(tmp_path, "p.z.b"), registry).slot == 2


def test_exhausted_registry_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(netplan, "LAST_SLOT", 2)
    registry = tmp_path / "slots"
    netplan.allocate_slot(owner(tmp_path), registry)
    netplan.allocate_slot(owner(tmp_path), registry)
    with pytest.raises(netplan.SlotsExhausted, match="make sandbox-down"):
        netplan.allocate_slot(owner(tmp_path), registry)


def test_slots_of_finds_one_sandbox_only(tmp_path):
    registry = tmp_path / "slots"
    mine = netplan.allocate_slot(owner(tmp_path, "p.z.a"), registry)
    netplan.allocate_slot(SlotOwner(str(tmp_path / "x"), "p.z.b", os.getpid()), registry)
    found = netplan.slots_of(tmp_path / "sandbox", registry)
    assert list(found) == [mine.slot]
    assert found[mine.slot].cluster_id == "p.z.a"


@pytest.mark.parametrize("slot", [1, 7, 254])
def test_addresses_of_a_slot_stay_in_the_benchmark_range_and_apart(slot):
    net = NodeNetwork(slot)
    benchmark = ipaddress.ip_network("198.18.0.0/15")
    link = ipaddress.ip_network(f"{net.host_ip}/{net.link_prefix}", strict=False)
    assert ipaddress.ip_address(net.node_ip) in link
    pods = ipaddress.ip_network(net.pod_cidr)
    assert link.subnet_of(benchmark) and pods.subnet_of(benchmark)
    assert not link.overlaps(pods)
    assert ipaddress.ip_address(net.gateway_ip) in pods
    assert net.gateway_ip == str(pods.network_address + 1)


def test_no_two_slots_share_a_name_or_a_range():
    nets = [NodeNetwork(s) for s in range(netplan.FIRST_SLOT, netplan.LAST_SLOT + 1)]
    for attribute in ("netns", "host_veth", "host_table", "cgroup_root", "pod_cidr", "host_ip"):
        values = [getattr(n, attribute) for n in nets]
        assert len(set(values)) == len(values), attribute
    # Linux interface names have at most 15 characters.
    assert max(len(n.host_veth) for n in nets) <= 15
