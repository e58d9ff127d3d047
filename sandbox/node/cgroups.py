"""The cgroup root of a real node's pods (kubelet's cgroupRoot), in every hierarchy.

The kubelet (cgroupfs driver) puts its kubepods tree under the root it is
given; with one root per node slot, two kubelets on this machine never share
a cgroup. This machine mounts cgroup v1 hierarchies plus the unified one
("hybrid"); runc creates its containers' cgroups in all of them, so the root
is made, and later removed, in each.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from sandbox.node.commands import NodeError

CGROUP_MOUNT = Path("/sys/fs/cgroup")


def hierarchies(mount: Path = CGROUP_MOUNT) -> list[Path]:
    """Mounted cgroup hierarchies (v1 controllers, named ones, unified)."""
    if (mount / "cgroup.controllers").exists():  # pure cgroup v2
        return [mount]
    return sorted(p for p in mount.iterdir() if p.is_dir() and not p.is_symlink())


def create_root(root: str, mount: Path = CGROUP_MOUNT) -> None:
    for hierarchy in hierarchies(mount):
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        # cpuset children start empty and refuse tasks until given cpus and mems.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (path / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((hierarchy / name).read_text())


def kill_all(root: str, mount: Path = CGROUP_MOUNT) -> int:
    """SIGKILL every process left in the tree (containers of a crashed node); how many."""
    pids = set()
    for hierarchy in hierarchies(mount):
        top = hierarchy / root.lstrip("/")
        for procs in top.rglob("cgroup.procs") if top.is_dir() else []:
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_root(root: str, mount: Path = CGROUP_MOUNT) -> None:
    """rmdir the tree bottom-up in every hierarchy; fails naming a cgroup that still has tasks."""
    busy = []
    for hierarchy in hierarchies(mount):
        top = hierarchy / root.lstrip("/")
        if not top.is_dir():
            continue
        for path in [*sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True), top]:
            try:
                path.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                with contextlib.suppress(OSError):
                    if (path / "cgroup.procs").read_text().strip():
                        busy.append(str(path))
    if busy:
        raise NodeError(f"cgroups still have processes: {', '.join(busy[:5])}")


def leftovers(root: str, mount: Path = CGROUP_MOUNT) -> list[str]:
    return [
        str(hierarchy / root.lstrip("/"))
        for hierarchy in hierarchies(mount)
        if (hierarchy / root.lstrip("/")).exists()
    ]
