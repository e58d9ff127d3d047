"""Build the dask_gke.core collection tarball from this repository (`make collection`).

collections/ansible_collections/dask_gke/core/ is the collection as links into the
repository (roles/, library/ as plugins/modules, module_utils/, the roles' filter and
lookup plugins, meta/, changelogs/, ...), so that the repository runs its roles and
modules by FQCN. `ansible-galaxy collection build` would skip the links to directories
outside the collection, so this script copies the tree with every link dereferenced into
a staging directory, builds the tarball there and prints its path.

    python tools/build_collection.py [--output-dir dist] [--keep-staging DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TREE = REPO_ROOT / "collections" / "ansible_collections" / "dask_gke" / "core"
# Local state that may sit inside the linked directories, and the roles' own plugin
# directories: the collection carries those plugins once, under plugins/, and the roles
# call them by FQCN.
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", ".molecule", "filter_plugins", "lookup_plugins"
)


class BuildError(RuntimeError):
    """The tree is broken or ansible-galaxy failed."""


def dangling_links(tree: Path = TREE) -> list[Path]:
    """Links of the tree whose target does not exist."""
    return sorted(p for p in tree.rglob("*") if p.is_symlink() and not p.exists())


def stage(destination: Path, tree: Path = TREE) -> Path:
    """Copy the tree, links dereferenced, to destination/ansible_collections/dask_gke/core."""
    broken = dangling_links(tree)
    if broken:
        raise BuildError(f"links of {tree} point nowhere: {[str(p) for p in broken]}")
    target = destination / "ansible_collections" / "dask_gke" / "core"
    shutil.copytree(tree, target, symlinks=False, ignore=IGNORED)
    return target


def ansible_galaxy() -> str:
    """The ansible-galaxy next to the running Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-galaxy"
    return str(beside) if beside.exists() else "ansible-galaxy"


def build(output_dir: Path, keep_staging: Path | None = None) -> Path:
    """Stage the tree and build the tarball into output_dir; return the tarball's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    # One tarball in output_dir: execution-environment.yml takes dask_gke-core-*.tar.gz.
    for stale in output_dir.glob("dask_gke-core-*.tar.gz"):
        stale.unlink()
    with tempfile.TemporaryDirectory(prefix="dask-gke-collection-") as scratch:
        staging_root = keep_staging or Path(scratch)
        if keep_staging and keep_staging.exists():
            shutil.rmtree(keep_staging)
        staged = stage(staging_root)
        run = subprocess.run(
            [
                ansible_galaxy(),
                "collection",
                "build",
                str(staged),
                "--output-path",
                str(output_dir),
                "--force",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise BuildError(f"ansible-galaxy collection build failed:\n{run.stdout}{run.stderr}")
        if "[WARNING]" in run.stderr:
            # A skipped file or link is a tarball that differs from the tree.
            raise BuildError(f"ansible-galaxy collection build warned:\n{run.stderr}")
    marker = "Created collection for dask_gke.core at "
    built = [line.split(marker, 1)[1].strip() for line in run.stdout.splitlines() if marker in line]
    if not built:
        raise BuildError(f"no tarball reported by ansible-galaxy:\n{run.stdout}")
    return Path(built[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument(
        "--keep-staging", type=Path, help="stage here (kept) instead of a temporary directory"
    )
    args = parser.parse_args(argv)
    try:
        tarball = build(args.output_dir.resolve(), args.keep_staging)
    except BuildError as exc:
        print(f"collection: {exc}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
