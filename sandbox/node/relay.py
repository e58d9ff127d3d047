"""TCP relays of the sandbox daemon, on one asyncio loop thread.

A relay listens on an address and copies bytes to a target address. Its
listening socket is made inside a node's network namespace while the daemon
connects out from the host: that is how processes and pods in the namespace
reach the host's loopback-only services (the cluster's API server, the
package index) without any route or listener on the host side.

A connection whose target cannot be reached is reset, so the client sees it
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.node.commands import NodeError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 10.0  # for a call into the loop thread (listen, close)
CHUNK = 64 * 1024


def _listening_socket(host: str, port: int, netns_path: Path | None) -> socket.socket:
    """A listening TCP socket, made inside netns_path when given.

    setns() switches only the calling thread, so the socket is made on a
    short-lived thread; the socket keeps its namespace after the thread ends.
    """
    result: dict = {}

    def make() -> None:
        try:
            if netns_path is not None:
                with netns_path.open("rb") as netns:
                    os.setns(netns.fileno(), os.CLONE_NEWNET)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
            result["socket"] = sock
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=make, name="relay-listen")
    thread.start()
    thread.join()
    if "error" in result:
        where = f" in {netns_path.name}" if netns_path else ""
        raise NodeError(f"cannot listen on {host}:{port}{where}: {result['error']}")
    return result["socket"]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the client learns at once it was refused."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


@dataclass(eq=False)  # identity: relays live in sets
class Relay:
    name: str
    listen: tuple[str, int]
    target: Callable[[], tuple[str, int] | None]  # None: nothing to forward to (refuse)
    netns_path: Path | None = None
    connections: int = 0  # accepted and forwarded, for tests and logs
    refused: int = 0
    _server: asyncio.base_events.Server | None = None
    _open: set = field(default_factory=set)

    async def _handle(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")[0]
        target = self.target()
        try:
            if target is None:
                raise ConnectionRefusedError("no target")
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*target), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as error:
            self.refused += 1
            log.info("relay %s: cannot reach %s for %s: %s", self.name, target, peer, error)
            _reset(writer)
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._open.add(pair)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._open.discard(pair)
            for end in pair:
                end.close()


class RelayHub:
    """Owns the loop thread; listen() and close() are called from any other thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relays", daemon=True)
        self._thread.start()
        self._relays: set[Relay] = set()
        self._lock = threading.Lock()

    def _call(self, coroutine, what: str):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(CALL_TIMEOUT)
        except FutureTimeout as error:
            raise NodeError(
                f"{what}: no answer from the relay loop in {CALL_TIMEOUT:g} s"
            ) from error

    def listen(self, relay: Relay) -> Relay:
        sock = _listening_socket(*relay.listen, relay.netns_path)

        async def start():
            relay._server = await asyncio.start_server(relay._handle, sock=sock)

        self._call(start(), f"relay {relay.name}")
        with self._lock:
            self._relays.add(relay)
        log.info("relay %s listening on %s:%d", relay.name, *relay.listen)
        return relay

    def close(self, relay: Relay) -> None:
        """Stop listening and drop the relay's open connections."""

        async def stop():
            if relay._server is not None:
                relay._server.close()
            # abort(), not close(): close() waits to flush what a slow peer has not
            # read yet, and Server.wait_closed() waits for every connection.
            for pair in list(relay._open):
                for end in pair:
                    end.transport.abort()
            if relay._server is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(relay._server.wait_closed(), CALL_TIMEOUT / 2)

        with self._lock:
            if relay not in self._relays:
                return
            self._relays.discard(relay)
        self._call(stop(), f"closing relay {relay.name}")
        log.info("relay %s closed", relay.name)

    def relays(self) -> list[Relay]:
        with self._lock:
            return list(self._relays)

    def stop(self) -> None:
        for relay in self.relays():
            with contextlib.suppress(NodeError):
                self.close(relay)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT)
