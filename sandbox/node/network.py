"""The real node's network: a namespace the host reaches over a veth pair, and nothing else.

Inside the namespace: eth0 (the node's InternalIP) and the pod bridge cbr0;
no default route, so a packet for any address that is not the link, a pod
or a translated Service has nowhere to go. Firewall rules make it explicit
on both sides:

- host, table inet dask_gke_<slot>: the namespace may answer what the host
  opened (kube-apiserver to the kubelet, the load balancer to a NodePort) and
  nothing else; nothing is forwarded through the host to or from the veth.
  The same table holds the cloud load balancer of the node's cluster: a
  connection from the host to a LoadBalancer address (127.<slot>.x.y) is
  refused when its source is outside the Service's ranges, else DNATed to
  the NodePort and masqueraded to the veth's address (the kernel lets a
  loopback source leave only through an interface with route_localnet).
- namespace, table inet dask_gke_node: pods reach only cluster DNS and the
  package index on the gateway; nothing from a pod goes out of eth0 unless it
  answers a connection the host opened.

Teardown deletes the host table and the namespace (which takes the veth, the
bridge, its own tables and kube-proxy's with it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sandbox.node.commands import NodeError, in_netns, run
from sandbox.node.netplan import NodeNetwork
from sandbox.pypi import INDEX_PORT

log = logging.getLogger(__name__)

# Sysctls of the namespace (its own copies; the host's stay as they are):
# routing between eth0 and the bridge, and bridged pod traffic through
# netfilter so a Service answer between two pods of the bridge is un-NATed.
NAMESPACE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.ipv6.conf.all.disable_ipv6": "1",
}


def _input_chain(interface: str, *allowed: str) -> str:
    """An input chain: from `interface`, only answers to what this side opened and
    the `allowed` matches come in; the rest is counted and dropped."""
    rules = [
        "ct state established,related accept",
        *(f"{match} accept" for match in allowed),
        "counter drop",
    ]
    lines = [
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        *(f'    iifname "{interface}" {rule}' for rule in rules),
        "  }",
    ]
    return "\n".join(lines)


def host_rules(net: NodeNetwork) -> str:
    return f"""
table inet {net.host_table} {{
{_input_chain(net.host_veth)}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{net.host_veth}" counter drop
    oifname "{net.host_veth}" counter drop
  }}
  chain lb_guard {{
    type filter hook output priority -150; policy accept;
  }}
  chain lb_dnat {{
    type nat hook output priority -100; policy accept;
  }}
  chain lb_snat {{
    type nat hook postrouting priority 100; policy accept;
    oifname "{net.host_veth}" ip saddr 127.0.0.0/8 masquerade
  }}
}}
"""


def load_balancer_rules(net: NodeNetwork, forwardings) -> str:
    """One nft transaction replacing the cluster's load-balancer rules (Forwarding objects)."""
    table = f"inet {net.host_table}"
    lines = [f"flush chain {table} lb_guard", f"flush chain {table} lb_dnat"]
    for forwarding in sorted(forwardings, key=lambda f: f.ip):
        ipv4 = [r for r in forwarding.source_ranges if ":" not in r]
        for port, node_port in sorted(forwarding.node_ports.items()):
            match = f"ip daddr {forwarding.ip} tcp dport {port}"
            if forwarding.source_ranges:  # only IPv6 ranges: no IPv4 client is admitted
                allowed = f" ip saddr != {{ {', '.join(ipv4)} }}" if ipv4 else ""
                lines.append(f"add rule {table} lb_guard {match}{allowed} reject with tcp reset")
            lines.append(f"add rule {table} lb_dnat {match} dnat ip to {net.node_ip}:{node_port}")
    return "\n".join(lines) + "\n"


def apply_load_balancer_rules(net: NodeNetwork, forwardings) -> None:
    run(["nft", "-f", "-"], stdin=load_balancer_rules(net, forwardings))


def namespace_rules(net: NodeNetwork) -> str:
    dns_and_index = _input_chain(
        net.bridge,
        f"ip daddr {net.gateway_ip} udp dport 53",
        f"ip daddr {net.gateway_ip} tcp dport {{ 53, {INDEX_PORT} }}",
    )
    return f"""
table inet {net.node_table} {{
{dns_and_index}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    oifname "{net.node_veth}" counter drop
  }}
}}
"""


def create(net: NodeNetwork) -> None:
    """Create the namespace, the veth pair, the bridge and both rule sets (any leftover first)."""
    delete(net)
    ns = net.netns
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", net.host_veth, "type", "veth", "peer", "name", "dgktmp", "netns", ns],
        ["ip", "addr", "add", f"{net.host_ip}/{net.link_prefix}", "dev", net.host_veth],
        ["ip", "link", "set", net.host_veth, "up"],
        ["ip", "-n", ns, "link", "set", "dgktmp", "name", net.node_veth],
        ["ip", "-n", ns, "addr", "add", f"{net.node_ip}/{net.link_prefix}", "dev", net.node_veth],
        ["ip", "-n", ns, "link", "set", net.node_veth, "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        # The bridge exists before the first pod, so CoreDNS and the relays
        # can listen on the gateway; the CNI bridge plugin adopts it.
        ["ip", "-n", ns, "link", "add", net.bridge, "type", "bridge"],
        ["ip", "-n", ns, "addr", "add", f"{net.gateway_ip}/24", "dev", net.bridge],
        ["ip", "-n", ns, "link", "set", net.bridge, "up"],
    ]
    try:
        for argv in steps:
            run(argv)
        for key, value in NAMESPACE_SYSCTLS.items():
            run(in_netns(ns, ["sysctl", "-q", "-w", f"{key}={value}"]))
        # The load balancer's loopback-sourced connections leave through the veth
        # (masqueraded there); this interface's setting only, gone with it.
        run(["sysctl", "-q", "-w", f"net.ipv4.conf.{net.host_veth}.route_localnet=1"])
        run(["nft", "-f", "-"], stdin=host_rules(net))
        run(in_netns(ns, ["nft", "-f", "-"]), stdin=namespace_rules(net))
    except NodeError:
        delete(net)
        raise
    log.info("node network %s ready: %s", ns, net.describe())


def delete(net: NodeNetwork) -> None:
    """Remove everything create() made; succeeds when parts (or all) are already gone."""
    run(["nft", "delete", "table", "inet", net.host_table], check=False)
    if net.netns_path.exists():
        run(["ip", "netns", "delete", net.netns])
    # The host end goes with its peer; a half-made create may have left it alone.
    if Path(f"/sys/class/net/{net.host_veth}").exists():
        run(["ip", "link", "delete", net.host_veth], check=False)


def leftovers(net: NodeNetwork) -> list[str]:
    """What of this node's network still exists (empty after delete)."""
    found = []
    if net.netns_path.exists():
        found.append(f"network namespace {net.netns}")
    if Path(f"/sys/class/net/{net.host_veth}").exists():
        found.append(f"interface {net.host_veth}")
    tables = run(["nft", "list", "tables"], check=False).stdout
    if f"inet {net.host_table}" in tables.split("\n") or f"table inet {net.host_table}" in tables:
        found.append(f"nft table inet {net.host_table}")
    return found
