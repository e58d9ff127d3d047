"""The real node's firewall rules (sandbox/node/network.py), as rendered."""

from sandbox.node import network
from sandbox.node.netplan import NodeNetwork
from sandbox.pypi import INDEX_PORT

NET = NodeNetwork(9)


def lines(rules: str) -> list[str]:
    return [line.strip() for line in rules.splitlines() if line.strip()]


def test_host_admits_only_answers_from_the_namespace_and_forwards_nothing():
    rules = lines(network.host_rules(NET))
    veth = f'"{NET.host_veth}"'
    assert f"table inet {NET.host_table} {{" in rules
    input_rules = rules[rules.index("chain input {") :]
    assert input_rules[2] == f"iifname {veth} ct state established,related accept"
    assert input_rules[3] == f"iifname {veth} counter drop"
    assert f"iifname {veth} counter drop" in rules[rules.index("chain forward {") :]
    assert f"oifname {veth} counter drop" in rules[rules.index("chain forward {") :]


def test_pods_reach_only_dns_and_the_package_index_on_the_gateway():
    rules = lines(network.namespace_rules(NET))
    bridge, gateway = f'"{NET.bridge}"', NET.gateway_ip
    accepted = [r for r in rules if r.startswith(f"iifname {bridge}") and r.endswith("accept")]
    assert accepted == [
        f"iifname {bridge} ct state established,related accept",
        f"iifname {bridge} ip daddr {gateway} udp dport 53 accept",
        f"iifname {bridge} ip daddr {gateway} tcp dport {{ 53, {INDEX_PORT} }} accept",
    ]
    assert f"iifname {bridge} counter drop" in rules


def test_nothing_new_leaves_the_namespace_towards_the_host():
    rules = lines(network.namespace_rules(NET))
    forward = rules[rules.index("chain forward {") :]
    assert forward[2:4] == [
        "ct state established,related accept",
        f'oifname "{NET.node_veth}" counter drop',
    ]
