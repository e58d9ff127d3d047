"""Cache keys and the builders' lock under ~/.cache/dask-gke/images/."""

import fcntl
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path

from sandbox.images.config import REPO_ROOT, SOURCES_DIR
from sandbox.images.run import ImageError, info

# Files whose content changes what an image holds: the builder itself and the
# index URL its pip.conf points at.
EXTRA_SOURCES = (REPO_ROOT / "sandbox" / "pypi" / "__init__.py",)
LOCK_TIMEOUT = 3600.0  # seconds to wait for another builder (a cold build takes minutes)
LOCK_POLL = 0.5


def digest(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.hexdigest()


def source_files(root: Path = SOURCES_DIR) -> list[Path]:
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    return sorted(files) + [p for p in EXTRA_SOURCES if p.is_file()]


def sources_digest(files: list[Path] | None = None) -> str:
    """One digest over the builder's sources (paths and contents)."""
    parts: list[str | bytes] = []
    for path in source_files() if files is None else files:
        parts += [str(path.relative_to(REPO_ROOT)), path.read_bytes()]
    return digest(*parts)


@contextmanager
def build_lock(lock_file: Path, timeout: float = LOCK_TIMEOUT):
    """Exclusive lock between builders (processes) sharing one cache; bounded wait."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    info(f"waiting for another image builder ({holder}) holding {lock_file}")
                    told = True
                if time.monotonic() > deadline:
                    raise ImageError(
                        f"gave up after {timeout:.0f} s waiting for the image build lock "
                        f"{lock_file} (another builder is still running)"
                    ) from None
                time.sleep(LOCK_POLL)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(temporary: Path, final: Path) -> None:
    """Move a finished file into place atomically (same file system)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temporary, final)
