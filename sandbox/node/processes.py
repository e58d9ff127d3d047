"""Processes of a real node: started with a PID file, stopped by that PID only.

The PID files live in <sandbox>/pids/ with every other sandbox process, so
`python -m sandbox.cli down` stops them even when the daemon that started
them is gone. The PID recorded is the daemon's own (nsenter execs it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sandbox.node.commands import NodeError, in_netns

STOP_TIMEOUT = 10.0  # SIGTERM to SIGKILL
ERROR_LINE = re.compile(r"^[EF]\d{4} |level=(error|fatal)|\[ERROR\]")
POLL = 0.1


def alive(pid: int | None) -> bool:
    """Running and not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


class NodeProcess:
    """One long-running process of the node (containerd, kubelet, ...)."""

    def __init__(self, name: str, pid_file: Path, log_file: Path, netns: str | None = None):
        self.name = name
        self.netns = netns
        self.pid_file = pid_file
        self.log_file = log_file
        self._popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else read_pid(self.pid_file)

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        argv = in_netns(self.netns, argv) if self.netns else list(argv)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(
                f"\n--- {time.strftime('%H:%M:%S')} starting {self.name}: {shlex.join(argv)}\n"
            )
            log.flush()
            try:
                self._popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as error:
                raise NodeError(f"cannot start {self.name} ({argv[0]}): {error}") from error
        self.pid_file.write_text(f"{self._popen.pid}\n", encoding="utf-8")

    def running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return alive(read_pid(self.pid_file))

    def stop(self) -> None:
        pid = self.pid
        if pid and self.running():
            stop_pid(pid, self.name)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1)  # reap it
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 4) -> str:
        """The last error lines of the log (klog E/F, logrus error/fatal), else its last lines."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        recent = text.strip().splitlines()[-300:]
        errors = [line for line in recent if ERROR_LINE.search(line)]
        return " | ".join(line.strip()[:400] for line in (errors or recent)[-lines:])


def stop_pid(pid: int, name: str) -> None:
    """SIGTERM, wait (bounded), then SIGKILL; raises when even that does not end it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_until(lambda: not alive(pid), STOP_TIMEOUT):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_until(lambda: not alive(pid), STOP_TIMEOUT):
        raise NodeError(f"{name} (pid {pid}) still runs after SIGKILL")


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = POLL) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def scan_processes(*files: str) -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the bytes of /proc/<pid>/<file> for each of `files`) of every process but this
    one; a process that exits while it is read is passed over."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            contents = [(entry / name).read_bytes() for name in files]
        except OSError:
            continue  # exited while we looked
        yield int(entry.name), contents


def stop_processes_mentioning(marker: str) -> list[int]:
    """Stop every process whose command line contains marker (a path only we use)."""
    stopped = []
    for pid, (cmdline,) in scan_processes("cmdline"):
        if marker.encode() in cmdline and alive(pid):
            stop_pid(pid, cmdline.split(b"\0")[0].decode(errors="replace"))
            stopped.append(pid)
    return stopped
