"""A private containerd and a network namespace for running the sandbox images in tests.

Everything lives in a temporary directory (root, state, socket) and in a
network namespace of our own; teardown kills the tasks, stops containerd by
its PID, unmounts what is left under the directory and deletes the namespace.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.node.commands import NodeError, in_netns
from sandbox.node.runtime import containerd_base_config, mounts_under, unmount_under
from sandbox.subprocesses import start_logged

NAMESPACE = "k8s.io"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
NETNS_DIR = Path("/var/run/netns")


def tool(name: str) -> str:
    """The absolute path of a program the harness runs."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise RuntimeError(f"{name} is not installed: run `make sandbox-system-packages`")
    return path


class Containerd:
    """containerd with its own root, state and socket; `ctr` calls against it."""

    def __init__(self):
        # Short path: unix socket paths are limited to 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="dgk-ctrd-", dir="/tmp"))
        self.socket = self.dir / "containerd.sock"
        self.log = self.dir / "containerd.log"
        self.process = None

    def start(self) -> None:
        config = self.dir / "config.toml"
        # Images only: no kubelet talks to it, so no CRI plugin.
        config.write_text(
            containerd_base_config(
                self.dir / "root",
                self.dir / "state",
                self.socket,
                disabled=("io.containerd.grpc.v1.cri",),
            )
        )
        with self.log.open("w") as log:
            self.process = start_logged([tool("containerd"), "--config", str(config)], log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.socket.exists() and self.ctr("version", check=False).returncode == 0:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(
            f"containerd did not answer on {self.socket} within {START_TIMEOUT:.0f} s:\n"
            + self.log.read_text()[-3000:]
        )

    def ctr(self, *args: str, timeout: float = 120.0, check: bool = True, **kwargs):
        argv = [tool("ctr"), "-a", str(self.socket), "-n", NAMESPACE, *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}")
        return result

    def remove_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            for _ in range(50):
                if self.ctr("tasks", "delete", task, check=False).returncode == 0:
                    break
                time.sleep(0.1)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.remove_containers()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        try:
            unmount_under(self.dir)
        except NodeError:
            return  # never remove a tree something is still mounted in
        if not mounts_under(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


class NetworkNamespace:
    """A network namespace with only loopback up: no route leads anywhere else."""

    def __init__(self):
        self.name = f"dgk-img-{os.getpid()}-{secrets.token_hex(3)}"
        self.path = NETNS_DIR / self.name

    def create(self) -> None:
        subprocess.run([tool("ip"), "netns", "add", self.name], check=True, timeout=30)
        subprocess.run(
            [tool("ip"), "-n", self.name, "link", "set", "lo", "up"], check=True, timeout=30
        )

    def delete(self) -> None:
        if self.path.exists():
            subprocess.run([tool("ip"), "netns", "delete", self.name], check=False, timeout=30)

    def connects(self, host: str, port: int, timeout: float = 2.0) -> bool:
        """Whether a TCP connection to host:port succeeds from inside the namespace."""
        probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout={timeout})"
        argv = in_netns(self.name, [sys.executable, "-c", probe])
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0

    def wait_for(self, host: str, port: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connects(host, port):
                return True
            time.sleep(0.5)
        return False
