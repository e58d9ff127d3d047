"""python -m sandbox.images build|import: build the sandbox's images, or import them.

    python -m sandbox.images build [--dask-version V] [--all]
    python -m sandbox.images import --address SOCKET [--ctr ctr] [--dask-version V] [--all]

--dask-version defaults to dask_chart_dask_version of roles/dask_chart/defaults/main.yml;
--all adds the pause image (registry.k8s.io/pause:3.10). `build` prints one
"<reference> <archive>" line per image on stdout.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

from sandbox.images import ImageError, ensure_images, ensure_pause_image, import_images

IMPORT_TIMEOUT = 300.0


def _archives(args):
    archives = ensure_images(args.dask_version)
    if args.all:
        archives.append(ensure_pause_image())
    return archives


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.images", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "import"):
        command = commands.add_parser(name)
        command.add_argument("--dask-version", help="default: dask_chart_dask_version of the role")
        command.add_argument("--all", action="store_true", help="the pause image too")
        if name == "import":
            command.add_argument("--address", type=Path, required=True, help="containerd socket")
            command.add_argument("--ctr", default=shutil.which("ctr") or "ctr")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        archives = _archives(args)
        if args.command == "import":
            import_images(Path(args.ctr), args.address, archives, IMPORT_TIMEOUT)
    except ImageError as error:
        print(f"images: error: {error}", file=sys.stderr)
        return 1
    for archive in archives:
        print(f"{' '.join(archive.refs)} {archive.path}")
    print(f"images: {args.command} finished in {time.monotonic() - start:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
