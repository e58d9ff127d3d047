# TEMPORARY LOCAL STUB (not committed): the images engineer delivers the real module.
import subprocess
from dataclasses import dataclass
from pathlib import Path

C = Path.home() / ".cache/dask-gke/images"


@dataclass(frozen=True)
class ImageArchive:
    ref: str
    path: Path


def ensure_pause_image():
    return ImageArchive("registry.k8s.io/pause:3.10", C / "pause-c8b031b326cd/pause.oci.tar")


def ensure_images(version):
    d = next(C.glob(f"dask-{version}-*"))
    return [
        ImageArchive(f"ghcr.io/dask/dask:{version}", d / "dask.oci.tar"),
        ImageArchive(f"ghcr.io/dask/dask-notebook:{version}", d / "dask-notebook.oci.tar"),
    ]


def import_images(ctr, address, archives, timeout):
    have = subprocess.run(
        [str(ctr), "--address", str(address), "-n", "k8s.io", "images", "ls", "-q"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for a in archives:
        if a.ref in have:
            continue
        subprocess.run(
            [str(ctr), "--address", str(address), "-n", "k8s.io", "images", "import", str(a.path)],
            check=True,
            timeout=timeout,
            capture_output=True,
        )


def sandbox_dask_versions():
    return ["2024.1.0"]


def default_dask_version():
    return "2024.1.0"
