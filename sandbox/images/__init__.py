"""Offline images for the sandbox's real node, named as the chart names them.

    from sandbox.images import ensure_images, ensure_pause_image, import_images
    archives = ensure_images("2026.8.0")   # ghcr.io/dask/dask:V, ghcr.io/dask/dask-notebook:V
    import_images(Path("/usr/bin/ctr"), socket, [*archives, ensure_pause_image()], timeout=120)

Command line: python -m sandbox.images build [--dask-version V] [--all]
See docs/contracts.md ("Images") and sandbox/README.md.
"""

from sandbox.images.build import ImageArchive, ensure_images, ensure_pause_image, import_images
from sandbox.images.config import (
    IMAGE_PYTHON,
    PAUSE_IMAGE,
    default_dask_version,
    sandbox_dask_versions,
)
from sandbox.images.run import ImageError

__all__ = [
    "IMAGE_PYTHON",
    "PAUSE_IMAGE",
    "ImageArchive",
    "ImageError",
    "default_dask_version",
    "ensure_images",
    "ensure_pause_image",
    "import_images",
    "sandbox_dask_versions",
]
