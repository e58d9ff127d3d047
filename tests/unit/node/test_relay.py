"""TCP relays (sandbox/node/relay.py) on loopback: forwarding, source ranges, closing."""

import socket
import socketserver
import threading

import pytest

from sandbox.node.commands import NodeError
from sandbox.node.relay import Relay, RelayHub, source_ranges_check


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(1024):
            self.request.sendall(b"echo:" + data)


@pytest.fixture
def echo_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


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


def test_a_relay_copies_both_ways(hub, echo_server):
    address = ("127.0.0.21", free_port("127.0.0.21"))
    relay = hub.listen(Relay("t", address, target=lambda: echo_server))
    assert talk(address) == b"echo:hi"
    assert relay.connections == 1


def test_source_ranges_refuse_other_addresses_at_once(hub, echo_server):
    address = ("127.0.0.22", free_port("127.0.0.22"))
    relay = hub.listen(
        Relay("t", address, target=lambda: echo_server, allow=source_ranges_check(["127.0.0.1/32"]))
    )
    assert talk(address, source="127.0.0.1") == b"echo:hi"
    with pytest.raises(ConnectionResetError):
        talk(address, source="127.0.0.9")
    assert (relay.connections, relay.refused) == (1, 1)


def test_no_source_ranges_admit_everyone_as_on_gke():
    allow = source_ranges_check([])
    assert allow("127.0.0.9") and allow("203.0.113.7")
    assert not source_ranges_check(["10.0.0.0/8", "2001:db8::/32"])("127.0.0.1")


def test_no_target_is_a_reset_not_a_hang(hub):
    address = ("127.0.0.23", free_port("127.0.0.23"))
    relay = hub.listen(Relay("t", address, target=lambda: None))
    with pytest.raises(ConnectionResetError):
        talk(address)
    assert relay.refused == 1


def test_closing_stops_listening_and_drops_open_connections(hub, echo_server):
    address = ("127.0.0.24", free_port("127.0.0.24"))
    relay = hub.listen(Relay("t", address, target=lambda: echo_server))
    conn = socket.create_connection(address, timeout=5)
    conn.sendall(b"x")
    assert conn.recv(16) == b"echo:x"
    hub.close(relay)
    assert conn.recv(16) == b""  # the relay hung up
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        talk(address)


def test_a_taken_address_is_an_error_naming_it(hub, echo_server):
    address = ("127.0.0.25", free_port("127.0.0.25"))
    hub.listen(Relay("first", address, target=lambda: echo_server))
    with pytest.raises(NodeError, match=r"127\.0\.0\.25"):
        hub.listen(Relay("second", address, target=lambda: echo_server))
