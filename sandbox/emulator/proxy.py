"""CONNECT proxy on loopback that tunnels only the Google API hosts the emulator serves.

container.googleapis.com:443 and the few hosts around it (OAuth tokens,
serviceusage, compute, iam; server.HOSTS), each named explicitly. The tunnel ends
at the emulator's TLS port on 127.0.0.1, so the client's TLS session (SNI of the
host, trusted through the sandbox CA) reaches the emulator. Every other target,
and plain HTTP proxying, gets 403.
"""

import logging
import select
import socket
import socketserver

from sandbox.emulator.server import HOSTS

log = logging.getLogger("sandbox.proxy")

ALLOWED_TARGETS = frozenset(f"{host}:443" for host in HOSTS)
MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT = 300.0  # seconds a tunnel may sit without traffic before it is closed
CONNECT_TIMEOUT = 10.0


def _read_head(conn: socket.socket) -> bytes:
    """Read the request line and headers (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_HEADER_BYTES:
            break
    return data


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    sockets = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], IDLE_TIMEOUT)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (upstream if sock is client else client).sendall(data)


class ConnectHandler(socketserver.BaseRequestHandler):
    def handle(self):
        conn: socket.socket = self.request
        conn.settimeout(CONNECT_TIMEOUT)
        head = _read_head(conn)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        method, _, rest = request_line.partition(" ")
        target = rest.split(" ", 1)[0]
        if method.upper() != "CONNECT" or target.lower() not in ALLOWED_TARGETS:
            log.warning("refused %s %s from %s", method, target, self.client_address[0])
            conn.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        try:
            upstream = socket.create_connection(
                ("127.0.0.1", self.server.upstream_port), timeout=CONNECT_TIMEOUT
            )
        except OSError as error:
            log.error("emulator port %s unreachable: %s", self.server.upstream_port, error)
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            early = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
            if early:  # bytes the client sent before our 200 belong to the tunnel
                upstream.sendall(early)
            conn.settimeout(None)
            upstream.settimeout(None)
            _pipe(conn, upstream)


class ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream_port: int):
        self.upstream_port = upstream_port
        super().__init__(("127.0.0.1", port), ConnectHandler)
