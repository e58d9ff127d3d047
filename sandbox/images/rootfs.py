"""The images' root file systems: Debian from mmdebstrap, Python packages installed offline.

Commands inside a rootfs run in a private mount and PID namespace (unshare):
/proc, /dev and the wheel directory are mounted there only, so nothing is
left mounted on the host when a command ends, fails or is killed.
"""

import shlex
import shutil
from pathlib import Path

from sandbox.images.config import (
    CONDA_DIR,
    DEBIAN_GLIBC,
    DEBIAN_MIRROR,
    DEBIAN_PACKAGES,
    DEBIAN_SECURITY_MIRROR,
    DEBIAN_SUITE,
    FILES_DIR,
    IMAGE_PYTHON,
    NB_GID,
    NB_UID,
    NB_USER,
)
from sandbox.images.run import ImageError, run
from sandbox.pypi import INDEX_HOST, INDEX_PORT, index_url

MMDEBSTRAP_TIMEOUT = 900.0
CHROOT_TIMEOUT = 900.0
QUICK_TIMEOUT = 60.0
WHEELS_MOUNT = "/tmp/wheels"  # noqa: S108 (inside the rootfs being built, never the host's /tmp)
CHROOT_PATH = f"{CONDA_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHROOT_ENV = {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
HOOK_LIBRARY = "usr/local/lib/dask-gke/install-extra-packages.sh"
# Keep the images small: no manuals, documentation (but copyrights) or translations.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)


def render_pip_conf() -> str:
    """/etc/pip.conf of the images: the sandbox's index, by the name pods resolve."""
    template = (FILES_DIR / "pip.conf.in").read_text()
    return template.format(index_url=index_url(), host=INDEX_HOST, port=INDEX_PORT)


def debian_sources() -> list[str]:
    return [
        f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main",
        f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main",
        f"deb {DEBIAN_SECURITY_MIRROR} {DEBIAN_SUITE}-security main",
    ]


def in_rootfs(
    rootfs: Path, argv: list[str], what: str, timeout: float = CHROOT_TIMEOUT, wheels=None
) -> str:
    """Run argv chrooted in rootfs; /proc, /dev (and the wheels, read-only) mounted privately."""
    root = shlex.quote(str(rootfs))
    script = [
        "set -e",
        f"mount -t proc proc {root}/proc",
        f"mount --rbind /dev {root}/dev",
    ]
    if wheels is not None:
        target = shlex.quote(str(rootfs) + WHEELS_MOUNT)
        script += [
            f"mkdir -p {target}",
            f"mount --bind {shlex.quote(str(wheels))} {target}",
            f"mount -o remount,bind,ro {target}",
        ]
    script.append(f"exec chroot {root} {shlex.join(argv)}")
    unshare = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]
    return run([*unshare, "sh", "-c", "\n".join(script)], what, timeout, env=CHROOT_ENV)


def debootstrap(rootfs: Path) -> None:
    """Debian DEBIAN_SUITE (essential variant plus DEBIAN_PACKAGES) into the empty rootfs."""
    argv = [
        "mmdebstrap",
        "--variant=essential",
        "--mode=root",
        f"--include={','.join(DEBIAN_PACKAGES)}",
        '--aptopt=Acquire::Retries "3"',
        *(f"--dpkgopt={option}" for option in DPKG_EXCLUDES),
        DEBIAN_SUITE,
        str(rootfs),
        *debian_sources(),
    ]
    run(argv, f"mmdebstrap {DEBIAN_SUITE}", MMDEBSTRAP_TIMEOUT)
    check_rootfs(rootfs)


def check_rootfs(rootfs: Path) -> None:
    """The rootfs carries the Python and glibc the wheels were chosen for."""
    python = in_rootfs(
        rootfs,
        ["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        "reading the rootfs's Python version",
        QUICK_TIMEOUT,
    ).strip()
    if python != IMAGE_PYTHON:
        raise ImageError(
            f"Debian {DEBIAN_SUITE} brings Python {python}, not IMAGE_PYTHON {IMAGE_PYTHON}: "
            "change IMAGE_PYTHON or DEBIAN_SUITE in sandbox/images/config.py together"
        )
    glibc = in_rootfs(rootfs, ["getconf", "GNU_LIBC_VERSION"], "reading glibc's version")
    found = tuple(int(x) for x in glibc.split()[-1].split(".")[:2])
    if found < DEBIAN_GLIBC:
        raise ImageError(
            f"Debian {DEBIAN_SUITE} has glibc {glibc.strip()}, older than DEBIAN_GLIBC "
            f"{DEBIAN_GLIBC}: wheels for newer manylinux tags would not load"
        )


def pip_install(rootfs: Path, wheels: Path, requirements: list[str], what: str) -> None:
    """Install requirements into /opt/conda offline, pinned by the wheel set's constraints."""
    argv = [
        f"{CONDA_DIR}/bin/pip",
        "--isolated",
        "--disable-pip-version-check",
        "install",
        "--quiet",
        "--no-index",
        "--no-cache-dir",
        "--root-user-action=ignore",
        "--find-links",
        WHEELS_MOUNT,
        "--constraint",
        f"{WHEELS_MOUNT}/constraints.txt",
        *requirements,
    ]
    in_rootfs(rootfs, argv, what, wheels=wheels)


def write_file(rootfs: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = rootfs / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def install_file(rootfs: Path, name: str, path: str, mode: int = 0o644) -> None:
    write_file(rootfs, path, (FILES_DIR / name).read_text(), mode)


def own_conda_dir(rootfs: Path) -> None:
    """/opt/conda belongs to NB_UID:NB_GID in both images, so the notebook layer need not
    re-own (and so copy) every file, and jovyan can pip install into it at start."""
    run(
        ["chown", "-R", "-h", f"{NB_UID}:{NB_GID}", str(rootfs / CONDA_DIR.lstrip("/"))],
        "owning /opt/conda",
        QUICK_TIMEOUT,
    )


def setup_base(rootfs: Path, wheels: Path, requirements: list[str]) -> None:
    """The ghcr.io/dask/dask rootfs: venv at /opt/conda, Dask, entrypoint, pip.conf."""
    in_rootfs(rootfs, ["/usr/bin/python3", "-m", "venv", CONDA_DIR], "creating /opt/conda")
    pip_install(rootfs, wheels, requirements, "installing the base image's wheels")
    write_file(rootfs, "/etc/pip.conf", render_pip_conf())
    install_file(rootfs, "install-extra-packages.sh", HOOK_LIBRARY)
    install_file(rootfs, "prepare.sh", "/usr/bin/prepare.sh", 0o755)
    (rootfs / "opt" / "app").mkdir(parents=True, exist_ok=True)
    own_conda_dir(rootfs)


def add_notebook_user(rootfs: Path) -> None:
    """jovyan (NB_UID) in group users (NB_GID), home /home/jovyan, as docker-stacks."""
    with (rootfs / "etc" / "passwd").open("a") as passwd:
        passwd.write(f"{NB_USER}:x:{NB_UID}:{NB_GID}::/home/{NB_USER}:/bin/bash\n")
    with (rootfs / "etc" / "shadow").open("a") as shadow:
        shadow.write(f"{NB_USER}:!::0:99999:7:::\n")
    group_file = rootfs / "etc" / "group"
    if not any(line.startswith("users:") for line in group_file.read_text().splitlines()):
        raise ImageError(f"{group_file} has no group 'users' ({NB_GID})")
    for home in (rootfs / "home" / NB_USER, rootfs / "home" / NB_USER / "work"):
        home.mkdir(parents=True, exist_ok=True)
        shutil.chown(home, NB_UID, NB_GID)


def setup_notebook(rootfs: Path, wheels: Path, requirements: list[str]) -> None:
    """The ghcr.io/dask/dask-notebook rootfs on top of the base: JupyterLab, jovyan, start.sh."""
    pip_install(rootfs, wheels, requirements, "installing the notebook image's wheels")
    add_notebook_user(rootfs)
    install_file(rootfs, "jupyter_server_config.py", "/etc/jupyter/jupyter_server_config.py")
    install_file(rootfs, "jupyter_notebook_config.py", "/etc/jupyter/jupyter_notebook_config.py")
    install_file(rootfs, "start.sh", "/usr/local/bin/start.sh", 0o755)
    install_file(rootfs, "run.sh", "/run.sh", 0o755)
    hooks = rootfs / "usr" / "local" / "bin"
    (hooks / "start-notebook.d").mkdir(parents=True, exist_ok=True)
    (hooks / "before-notebook.d").mkdir(parents=True, exist_ok=True)
    (hooks / "before-notebook.d" / "prepare.sh").symlink_to(f"/{HOOK_LIBRARY}")
    # The chart mounts its ConfigMap here: a directory on Jupyter's config path.
    (rootfs / "usr" / "local" / "etc" / "jupyter").mkdir(parents=True, exist_ok=True)
    own_conda_dir(rootfs)


def clean(rootfs: Path) -> None:
    """Remove what a container brings itself (/dev) or should not inherit (caches, /tmp)."""
    for directory in ("dev", "tmp", "var/tmp", "var/cache/apt", "var/lib/apt/lists", "root/.cache"):
        path = rootfs / directory
        if not path.is_dir() or path.is_symlink():
            continue
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
