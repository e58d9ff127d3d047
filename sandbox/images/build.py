"""Build (or find cached) the sandbox's image archives.

Cache layout under ~/.cache/dask-gke/images/ (DASK_GKE_CACHE moves it):
  releases/<project>-<version>.json   PyPI upload times (never change)
  resolutions/<version>-<key>.json    resolved wheel sets (key: version + resolution rules)
  wheels/                             downloaded wheel files, shared by every version
  dask-<version>-<key>/*.oci.tar      archives (key: builder sources + wheel set + suite)
  pause-<key>/pause.oci.tar           the pause image (key: its sources + Go version)
  build.lock                          one builder at a time; warm look-ups take no lock
"""

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.images import oci, rootfs, wheels
from sandbox.images.cache import build_lock, digest, publish, sources_digest
from sandbox.images.config import (
    CONDA_DIR,
    DASK_IMAGE,
    DEBIAN_SUITE,
    IMAGE_PYTHON,
    NB_GID,
    NB_UID,
    NB_USER,
    NOTEBOOK_IMAGE,
    PAUSE_IMAGE,
    PAUSE_SOURCES,
    SOURCES_DIR,
    default_dask_version,
    images_cache,
    python_tag,
)
from sandbox.images.run import ImageError, info, run, step

VERSION_PATTERN = re.compile(r"^[0-9]+(\.[0-9A-Za-z]+)+$")
GO_TIMEOUT = 300.0
PATH = f"{CONDA_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_TAG, NOTEBOOK_TAG = "dask", "dask-notebook"  # tags inside the build's OCI layout


@dataclass(frozen=True)
class ImageArchive:
    """An OCI archive and the image name(s) `ctr images import` gives it."""

    ref: str
    path: Path
    aliases: tuple[str, ...] = ()

    @property
    def refs(self) -> tuple[str, ...]:
        return (self.ref, *self.aliases)


def dask_archives(version: str, wheel_set_text: str) -> list[ImageArchive]:
    """Where the archives of this version and wheel set are (built or not)."""
    key = digest(sources_digest(), version, wheel_set_text, DEBIAN_SUITE)[:12]
    directory = images_cache() / f"dask-{version}-{key}"
    return [
        ImageArchive(
            f"{image}:{version}",
            directory / f"{name}.oci.tar",
            (f"{image}:{version}{python_tag()}",),
        )
        for image, name in ((DASK_IMAGE, "dask"), (NOTEBOOK_IMAGE, "dask-notebook"))
    ]


def _resolution_file(version: str) -> Path:
    return images_cache() / "resolutions" / f"{version}-{wheels.resolution_key(version)}.json"


def _cached(version: str) -> list[ImageArchive] | None:
    resolution = _resolution_file(version)
    if not resolution.exists():
        return None
    archives = dask_archives(version, resolution.read_text())
    return archives if all(a.path.exists() for a in archives) else None


def check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version):
        raise ImageError(
            f"Dask version {version!r} is not a release number such as 2026.8.0 "
            "(dask_chart_dask_version or --dask-version)"
        )
    return version


def ensure_images(dask_version: str | None = None) -> list[ImageArchive]:
    """The ghcr.io/dask/dask and dask-notebook archives of dask_version (default: the role's)."""
    version = check_version(dask_version or default_dask_version())
    archives = _cached(version)
    if archives:
        return archives
    with build_lock(images_cache() / "build.lock"):
        return _cached(version) or _build_dask(version)


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point.startswith(prefix):
            mounts.append(mount_point)
    return mounts


class _WorkDir:
    """A temporary build directory in the cache's file system, removed unless something is
    still mounted under it (removing would then reach the mounted file system)."""

    def __enter__(self) -> Path:
        parent = images_cache() / "tmp"
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="build-", dir=parent))
        return self.path

    def __exit__(self, *exc_info) -> None:
        mounts = _mounted_under(self.path)
        if mounts:
            info(f"not removing {self.path}: still mounted there: {', '.join(mounts)}")
            return
        shutil.rmtree(self.path, ignore_errors=True)


def _wheel_set(version: str, work: Path) -> wheels.WheelSet:
    resolution = _resolution_file(version)
    if resolution.exists():
        return wheels.WheelSet.from_json(resolution.read_text())
    with step(f"resolving the wheels of Dask {version} for Python {IMAGE_PYTHON}"):
        wheel_set = wheels.resolve(version, sys.executable, images_cache() / "releases", work)
    resolution.parent.mkdir(parents=True, exist_ok=True)
    temporary = work / "resolution-final.json"
    temporary.write_text(wheel_set.to_json())
    publish(temporary, resolution)
    info(f"{len(wheel_set.wheels)} wheels, dependencies uploaded before {wheel_set.cutoff}")
    return wheel_set


def _wheel_dir(wheel_set: wheels.WheelSet, files: Path, target: Path) -> Path:
    """A directory with exactly the set's wheels (hard links) and its constraints."""
    target.mkdir()
    for wheel in wheel_set.wheels:
        try:
            os.link(files / wheel.filename, target / wheel.filename)
        except OSError:
            shutil.copy2(files / wheel.filename, target / wheel.filename)
    (target / "constraints.txt").write_text(wheel_set.constraints())
    return target


def base_config(version: str) -> oci.ImageConfig:
    return oci.ImageConfig(
        env=(
            f"PATH={PATH}",
            f"PYTHON_VERSION={IMAGE_PYTHON}",
            f"DASK_VERSION={version}",
            "LANG=C.UTF-8",
            "LC_ALL=C.UTF-8",
        ),
        entrypoint=("tini", "-g", "--", "/usr/bin/prepare.sh"),
        labels={"org.opencontainers.image.description": "dask-gke sandbox image (offline)"},
    )


def notebook_config(version: str) -> oci.ImageConfig:
    return oci.ImageConfig(
        env=(
            f"PATH={PATH}",
            f"PYTHON_VERSION={IMAGE_PYTHON}",
            f"DASK_VERSION={version}",
            f"CONDA_DIR={CONDA_DIR}",
            "SHELL=/bin/bash",
            f"NB_USER={NB_USER}",
            f"NB_UID={NB_UID}",
            f"NB_GID={NB_GID}",
            f"HOME=/home/{NB_USER}",
            "LANG=C.UTF-8",
            "LC_ALL=C.UTF-8",
            "LANGUAGE=C.UTF-8",
        ),
        entrypoint=("tini", "-g", "--", "start.sh"),
        cmd=("/run.sh",),
        user=NB_USER,
        workdir=f"/home/{NB_USER}",
        ports=("8888/tcp",),
        labels={"org.opencontainers.image.description": "dask-gke sandbox image (offline)"},
    )


def _build_dask(version: str) -> list[ImageArchive]:
    info(f"building the images of Dask {version} (Debian {DEBIAN_SUITE}, Python {IMAGE_PYTHON})")
    with _WorkDir() as work:
        wheel_set = _wheel_set(version, work)
        files = images_cache() / "wheels"
        with step(f"downloading the wheels ({len(wheel_set.wheels)} in the set)"):
            fetched = wheels.download(wheel_set, sys.executable, files, work)
        size = wheel_set.download_size(files) / 2**20
        info(f"{fetched} wheels fetched, {len(wheel_set.wheels)} wheels, {size:.0f} MiB in the set")
        wheel_dir = _wheel_dir(wheel_set, files, work / "wheels")
        archives = dask_archives(version, wheel_set.to_json())
        layout, bundle = work / "layout", work / "bundle"
        with step("creating the OCI layout"):
            oci.new_layout(layout, BASE_TAG)
            root = oci.unpack(layout, BASE_TAG, bundle)
        with step(f"mmdebstrap {DEBIAN_SUITE}"):
            rootfs.debootstrap(root)
        with step(f"installing Dask {version} into {CONDA_DIR}"):
            rootfs.setup_base(root, wheel_dir, wheels.base_requirements(version))
        with step(f"packing {archives[0].ref}"):
            rootfs.clean(root)
            oci.repack(layout, BASE_TAG, bundle)
            oci.configure(layout, BASE_TAG, base_config(version))
        with step("installing JupyterLab and the notebook's files"):
            rootfs.setup_notebook(root, wheel_dir, wheels.notebook_requirements())
        with step(f"packing {archives[1].ref}"):
            rootfs.clean(root)
            oci.repack(layout, NOTEBOOK_TAG, bundle)
            oci.configure(layout, NOTEBOOK_TAG, notebook_config(version))
        with step("writing the archives"):
            for archive, tag in zip(archives, (BASE_TAG, NOTEBOOK_TAG), strict=True):
                temporary = archive.path.with_name(archive.path.name + f".{os.getpid()}.tmp")
                oci.write_archive(layout, tag, archive.refs, temporary)
                publish(temporary, archive.path)
                size = archive.path.stat().st_size / 2**20
                info(f"{archive.ref}: {archive.path} ({size:.0f} MiB)")
    return archives


# ---- pause ---------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if not go:
        raise ImageError("Go is needed to build the pause image: put `go` on PATH")
    return go


def pause_archive(go: str) -> ImageArchive:
    go_version = run([go, "env", "GOVERSION"], "reading Go's version", 30.0).strip()
    files = sorted(p for p in PAUSE_SOURCES.iterdir() if p.is_file())
    files += [SOURCES_DIR / "oci.py", SOURCES_DIR / "build.py"]
    key = digest(sources_digest(files), go_version)[:12]
    return ImageArchive(PAUSE_IMAGE, images_cache() / f"pause-{key}" / "pause.oci.tar")


def ensure_pause_image() -> ImageArchive:
    """registry.k8s.io/pause:3.10: our own static pause binary (Go, CGO_ENABLED=0)."""
    go = _go()
    archive = pause_archive(go)
    if archive.path.exists():
        return archive
    with build_lock(images_cache() / "build.lock"):
        if not archive.path.exists():
            _build_pause(go, archive)
    return archive


def _build_pause(go: str, archive: ImageArchive) -> None:
    with _WorkDir() as work, step(f"building {archive.ref}"):
        layout, bundle, tag = work / "layout", work / "bundle", "pause"
        oci.new_layout(layout, tag)
        root = oci.unpack(layout, tag, bundle)
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        run(
            [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(root / "pause"), "."],
            "building the pause binary",
            GO_TIMEOUT,
            env=env,
            cwd=PAUSE_SOURCES,
        )
        oci.repack(layout, tag, bundle)
        oci.configure(
            layout, tag, oci.ImageConfig(env=(), entrypoint=("/pause",), user="65535:65535")
        )
        temporary = archive.path.with_name(archive.path.name + f".{os.getpid()}.tmp")
        oci.write_archive(layout, tag, archive.refs, temporary)
        publish(temporary, archive.path)


def import_images(
    ctr_binary: Path, address: Path, archives: list[ImageArchive], timeout: float
) -> None:
    """`ctr -a address -n k8s.io images import` each archive, then check its names are listed.

    timeout bounds each ctr call; ImageError names the image that failed."""
    for archive in archives:
        oci.import_archive(ctr_binary, address, archive.path, archive.refs, timeout)
