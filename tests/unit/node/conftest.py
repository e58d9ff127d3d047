"""Fixtures of the node tests: local TCP servers that stand in for what a relay reaches."""

import socketserver
import threading

import pytest


@pytest.fixture
def echo_server():
    """start(prefix) -> (host, port) of a server answering prefix + what it received."""
    servers = []

    def start(prefix: bytes) -> tuple[str, int]:
        class Echo(socketserver.BaseRequestHandler):
            def handle(self):
                while data := self.request.recv(1024):
                    self.request.sendall(prefix + data)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
