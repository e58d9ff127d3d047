"""A TCP relay from inside a network namespace to a listener on the host's loopback.

The listening socket is created inside the namespace (by a thread that joins
it with setns and leaves again); connections to the target are made from the
host's namespace. So pods (or test containers) in the namespace reach
127.0.0.1:<port> of the host without any route out of their namespace.

    with NamespaceRelay(Path("/var/run/netns/x"), ("10.0.0.1", 3141), ("127.0.0.1", 18184)):
        ...
"""

import contextlib
import os
import socket
import threading
from pathlib import Path

CONNECT_TIMEOUT = 10.0
BUFFER = 1 << 16


def in_namespace(netns: Path, function):
    """function() run on a thread inside the network namespace netns; its result."""
    result: dict = {}

    def target():
        with open(netns, "rb") as namespace:
            try:
                os.setns(namespace.fileno(), os.CLONE_NEWNET)
                result["value"] = function()
            except BaseException as error:  # handed to the caller's thread below
                result["error"] = error

    thread = threading.Thread(target=target, name=f"netns {netns.name}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


class NamespaceRelay:
    """Accepts on `listen` inside netns, forwards each connection to `target` on the host."""

    def __init__(self, netns: Path, listen: tuple[str, int], target: tuple[str, int]):
        self.netns, self.listen, self.target = netns, listen, target
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> "NamespaceRelay":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        def bind():
            server = socket.create_server(self.listen, reuse_port=False)
            server.settimeout(None)
            return server

        self._server = in_namespace(self.netns, bind)
        threading.Thread(target=self._accept, name="relay accept", daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            for connection in list(self._open):
                connection.close()
            self._open.clear()

    def _accept(self) -> None:
        while self._server is not None:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        client.close()
        upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until end of file (or a closed socket), then end the sink's writing side."""
    try:
        while data := source.recv(BUFFER):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
