"""The real node's firewall rules (sandbox/node/network.py), as rendered."""

from sandbox.node import network
from sandbox.node.loadbalancer import Forwarding
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


def test_load_balancer_rules_refuse_outside_sources_and_forward_to_the_node_port():
    forwardings = [
        Forwarding("127.9.1.2", {8786: 31000, 80: 31001}, ["127.0.0.1/32", "2001:db8::/32"]),
        Forwarding("127.9.3.4", {80: 32000}, []),
    ]
    rules = lines(network.load_balancer_rules(NET, forwardings))
    table = f"inet {NET.host_table}"
    assert rules[:2] == [f"flush chain {table} lb_guard", f"flush chain {table} lb_dnat"]
    assert rules[2:] == [
        f"add rule {table} lb_guard ip daddr 127.9.1.2 tcp dport 80"
        " ip saddr != { 127.0.0.1/32 } reject with tcp reset",
        f"add rule {table} lb_dnat ip daddr 127.9.1.2 tcp dport 80 dnat ip to {NET.node_ip}:31001",
        f"add rule {table} lb_guard ip daddr 127.9.1.2 tcp dport 8786"
        " ip saddr != { 127.0.0.1/32 } reject with tcp reset",
        f"add rule {table} lb_dnat ip daddr 127.9.1.2 tcp dport 8786"
        f" dnat ip to {NET.node_ip}:31000",
        # No ranges: everyone is admitted, as on GKE.
        f"add rule {table} lb_dnat ip daddr 127.9.3.4 tcp dport 80 dnat ip to {NET.node_ip}:32000",
    ]


def test_only_ipv6_ranges_admit_no_ipv4_client():
    rules = lines(network.load_balancer_rules(NET, [Forwarding("127.9.1.2", {80: 1}, ["::/0"])]))
    guard = f"add rule inet {NET.host_table} lb_guard ip daddr 127.9.1.2 tcp dport 80"
    assert f"{guard} reject with tcp reset" in rules


def test_no_forwarding_leaves_empty_chains():
    assert lines(network.load_balancer_rules(NET, [])) == [
        f"flush chain inet {NET.host_table} lb_guard",
        f"flush chain inet {NET.host_table} lb_dnat",
    ]


def test_loopback_sources_are_masqueraded_on_the_way_to_the_node():
    rules = lines(network.host_rules(NET))
    snat = rules[rules.index("chain lb_snat {") :]
    assert f'oifname "{NET.host_veth}" ip saddr 127.0.0.0/8 masquerade' in snat
