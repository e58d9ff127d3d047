"""The package index pods install EXTRA_PIP_PACKAGES from: names and ports (one owner).

Pods see the index as http://pypi.dask-gke.internal:3141/root/pypi/+simple/
(the images' /etc/pip.conf). The sandbox's node makes CoreDNS resolve
INDEX_HOST to an address inside the node's network and relays INDEX_PORT there
to the caching PyPI proxy (devpi-server), which listens on the host at
127.0.0.1:<port base + 4>. Start and stop: sandbox.pypi.server.
"""

INDEX_HOST = "pypi.dask-gke.internal"
INDEX_PORT = 3141
# devpi-server's PyPI mirror index, as the simple API pip reads.
INDEX_PATH = "/root/pypi/+simple/"
PORT_OFFSET = 4  # from DASK_GKE_SANDBOX_PORT_BASE


def index_url(host: str = INDEX_HOST, port: int = INDEX_PORT) -> str:
    """The index URL pip uses (pods: the defaults; the host: 127.0.0.1 and host_port())."""
    return f"http://{host}:{port}{INDEX_PATH}"


def host_port(port_base: int) -> int:
    """The port the proxy listens on at 127.0.0.1 for a sandbox with this port base."""
    return port_base + PORT_OFFSET
