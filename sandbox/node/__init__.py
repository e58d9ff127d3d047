"""The sandbox's real node: the part of a sandbox cluster where the Dask pods really run.

Every KWOK cluster of the sandbox gets one real node next to KWOK's fake ones:
containerd + runc + the CNI bridge plugin (Debian packages), kubelet and
kube-proxy (built like the control plane), and CoreDNS, all inside a network
namespace of its own that the host reaches over a veth pair. Nothing in that
namespace has a route off the machine. The pieces:

    netplan.py       which addresses and names a node gets (a machine-wide slot)
    network.py       the namespace, veth, bridge and firewall rules (the load
                     balancer's forwarding among them), and their removal
    cgroups.py       the cgroup root of the node's pods, and its removal
    relay.py         TCP relays: API server and package index into the namespace
    processes.py     started processes, their PID files and their stop
    runtime.py       containerd, kubelet, kube-proxy and CoreDNS of one node
    loadbalancer.py  the cloud load balancer (LoadBalancer Services get a 127/8 IP
                     forwarded to the node, with source ranges and GKE's finalizer)
    dataplane.py     what the KWOK backend drives: one DataPlane per sandbox

docs/contracts.md ("The real node") states the interface; sandbox/README.md the
measured facts.
"""
