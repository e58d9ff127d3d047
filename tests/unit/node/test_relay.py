"""TCP relays (sandbox/node/relay.py) on loopback: forwarding, source ranges, closing."""

import socket

import pytest

from sandbox.node.commands import NodeError
from sandbox.node.relay import Relay, RelayHub


@pytest.fixture
def target(echo_server):
    return echo_server(b"echo:")


@pytest.fixture
def hub():
    relay_hub = RelayHub()
    yield relay_hub
    relay_hub.stop()


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def talk(address, source="127.0.0.1", payload=b"hi") -> bytes:
    with socket.create_connection(address, timeout=5, source_address=(source, 0)) as conn:
        conn.sendall(payload)
        return conn.recv(1024)


def test_a_relay_copies_both_ways(hub, target):
    address = ("127.0.0.21", free_port("127.0.0.21"))
    relay = hub.listen(Relay("t", address, target=lambda: target))
    assert talk(address) == b"echo:hi"
    assert relay.connections == 1


def test_no_target_is_a_reset_not_a_hang(hub):
    address = ("127.0.0.23", free_port("127.0.0.23"))
    relay = hub.listen(Relay("t", address, target=lambda: None))
    with pytest.raises(ConnectionResetError):
        talk(address)
    assert relay.refused == 1


def test_closing_stops_listening_and_drops_open_connections(hub, target):
    address = ("127.0.0.24", free_port("127.0.0.24"))
    relay = hub.listen(Relay("t", address, target=lambda: target))
    conn = socket.create_connection(address, timeout=5)
    conn.sendall(b"x")
    assert conn.recv(16) == b"echo:x"
    hub.close(relay)
    assert conn.recv(16) == b""  # the relay hung up
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        talk(address)


def test_a_taken_address_is_an_error_naming_it(hub, target):
    address = ("127.0.0.25", free_port("127.0.0.25"))
    hub.listen(Relay("first", address, target=lambda: target))
    with pytest.raises(NodeError, match=r"127\.0\.0\.25"):
        hub.listen(Relay("second", address, target=lambda: target))
