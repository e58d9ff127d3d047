"""Peak resident memory of a process tree, sampled from /proc in a thread."""

import os
import threading
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def parse_stat(text: str) -> tuple[int, int]:
    """(pid, ppid) from a /proc/<pid>/stat line; the command may contain spaces and ')'."""
    pid = int(text.split(" ", 1)[0])
    after_command = text.rsplit(")", 1)[1].split()
    return pid, int(after_command[1])  # fields after the command: state, ppid, ...


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """root and every process below it, from a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    tree, pending = set(), [root]
    while pending:
        pid = pending.pop()
        if pid in tree:
            continue
        tree.add(pid)
        pending.extend(children.get(pid, []))
    return tree


def resident_bytes(statm: str) -> int:
    """Resident set size from a /proc/<pid>/statm line (second field, in pages)."""
    return int(statm.split()[1]) * PAGE_SIZE


def read_parents(proc: Path = Path("/proc")) -> dict[int, int]:
    parents = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pid, ppid = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        parents[pid] = ppid
    return parents


def tree_resident_bytes(root: int, proc: Path = Path("/proc")) -> int:
    """Sum of the RSS of root and its descendants right now (0 once root has ended)."""
    total = 0
    for pid in descendants(root, read_parents(proc)):
        try:
            total += resident_bytes((proc / str(pid) / "statm").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return total


class PeakTreeMemory(threading.Thread):
    """Samples the RSS sum of a process tree every `interval` seconds until stopped.

    Use as a context manager around the wait for the root process. The sum
    counts shared pages once per process (RSS, not PSS): an upper bound.
    """

    def __init__(self, root: int, interval: float = 0.15):
        super().__init__(name=f"peak-rss-{root}", daemon=True)
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_resident_bytes(self.root))
            self.samples += 1
            self._stop_event.wait(self.interval)

    def __enter__(self) -> "PeakTreeMemory":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop_event.set()
        self.join(timeout=5)
