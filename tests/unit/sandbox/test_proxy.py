"""CONNECT proxy: tunnels only the emulated Google API hosts, to the emulator."""

import socket

import pytest
import requests


def connect(sandbox, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", sandbox.port_base), timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(4096)


@pytest.mark.parametrize(
    "target",
    [
        "example.com:443",
        "container.googleapis.com:80",
        "storage.googleapis.com:443",
        "accounts.google.com:443",
        "127.0.0.1:22",
    ],
)
def test_other_connect_targets_are_refused(sandbox, target):
    answer = connect(sandbox, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403")


def test_plain_http_proxying_is_refused(sandbox):
    answer = connect(sandbox, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403")


def test_gke_target_is_tunnelled_to_the_emulator(sandbox):
    target = b"container.googleapis.com:443"
    answer = connect(sandbox, b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    # And a real HTTPS client gets the emulator's answer through it.
    response = sandbox.call("GET", "us-central1-a", "/clusters")
    assert response.status_code == 200
    assert response.json() == {}


def test_tls_uses_a_certificate_for_container_googleapis_com(sandbox):
    session = requests.Session()
    session.trust_env = False
    session.proxies = sandbox.session.proxies
    # Without the sandbox CA the certificate is not trusted.
    with pytest.raises(requests.exceptions.SSLError):
        session.get(
            "https://container.googleapis.com/v1/projects/p/locations/-/clusters", timeout=5
        )
