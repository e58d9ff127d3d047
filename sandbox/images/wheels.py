"""Wheels for the images, resolved and downloaded on the host (a rootfs cannot reach PyPI).

Resolution: pip's own `--uploaded-prior-to`, with the cut-off at the Dask
release (the day after `dask==V` and `distributed==V` were uploaded), so an old
Dask gets the dependencies of its day (2024.1.0 predates numpy 2). One
exception: never before IMAGE_PYTHON had wheels for every compiled dependency
(PYTHON_WHEELS_SINCE), since older releases have none for that Python.
"""

import datetime
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sandbox.images.cache import digest
from sandbox.images.config import (
    DEBIAN_GLIBC,
    HOST_CA_BUNDLE,
    IMAGE_PYTHON,
    PYPI_INDEX,
    PYPI_JSON,
    SOURCES_DIR,
)
from sandbox.images.run import ImageError, run

# What each image installs beyond the one below it. Upstream's conda `dask`
# package brings numpy, pandas, bokeh, lz4, pyarrow, cytoolz, jinja2:
# dask[complete] is its PyPI equivalent; cachey and streamz as upstream's base.
BASE_REQUIREMENTS = ("dask[complete]=={v}", "distributed=={v}", "cachey", "streamz", "cytoolz")
NOTEBOOK_REQUIREMENTS = ("jupyterlab", "dask-labextension>=5", "ipywidgets")
# First day every compiled dependency had a manylinux wheel for that Python
# (for 3.13 the last was lz4 4.4.3, uploaded 2025-01-26).
PYTHON_WHEELS_SINCE = {"3.13": datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC)}
RELEASE_GRACE = datetime.timedelta(days=1)
LOOKUP_TIMEOUT = 30.0
RESOLVE_TIMEOUT = 600.0
DOWNLOAD_TIMEOUT = 1800.0
RELEASED_PROJECTS = ("dask", "distributed")


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class WheelSet:
    """The resolved wheels of one Dask version: the notebook's set, a superset of the base's."""

    dask_version: str
    cutoff: str
    wheels: tuple[Wheel, ...]

    def to_json(self) -> str:
        data = {
            "dask_version": self.dask_version,
            "python": IMAGE_PYTHON,
            "cutoff": self.cutoff,
            "wheels": [vars(w) for w in self.wheels],
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "WheelSet":
        data = json.loads(text)
        wheels = tuple(Wheel(**w) for w in data["wheels"])
        return cls(data["dask_version"], data["cutoff"], wheels)

    def constraints(self) -> str:
        """pip constraints pinning every resolved version (base and notebook agree)."""
        return "".join(f"{w.name}=={w.version}\n" for w in self.wheels)

    def download_size(self, files_dir: Path) -> int:
        return sum((files_dir / w.filename).stat().st_size for w in self.wheels)


def base_requirements(dask_version: str) -> list[str]:
    return [r.format(v=dask_version) for r in BASE_REQUIREMENTS]


def notebook_requirements() -> list[str]:
    return list(NOTEBOOK_REQUIREMENTS)


def platform_tags(glibc: tuple[int, int] = DEBIAN_GLIBC) -> list[str]:
    """Every manylinux tag a rootfs with this glibc accepts (pip does not expand them itself)."""
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_x86_64" for minor in range(newest, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def target_options(glibc: tuple[int, int] = DEBIAN_GLIBC) -> list[str]:
    """pip options selecting wheels for the image's interpreter and platform."""
    abi = "cp" + IMAGE_PYTHON.replace(".", "")
    options = ["--only-binary=:all:", "--python-version", IMAGE_PYTHON]
    options += ["--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(glibc):
        options += ["--platform", tag]
    return options


def host_pip(python: str) -> list[str]:
    """The host's pip, isolated from the machine's PIP_* variables and config files."""
    return [python, "-m", "pip", "--isolated", "--cert", str(HOST_CA_BUNDLE)]


def resolution_key(dask_version: str) -> str:
    """What the resolved set depends on: the version and the rules in this file and config.py."""
    rules = [(SOURCES_DIR / name).read_bytes() for name in ("wheels.py", "config.py")]
    return digest(dask_version, *rules)[:16]


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(HOST_CA_BUNDLE))


def upload_time(project: str, version: str, cache_dir: Path) -> datetime.datetime:
    """When the last file of project==version was uploaded to PyPI (cached: it never changes)."""
    cached = cache_dir / f"{project}-{version}.json"
    if cached.exists():
        return datetime.datetime.fromisoformat(json.loads(cached.read_text())["uploaded"])
    # The project's JSON (the per-version one is not served by every PyPI front).
    url = f"{PYPI_JSON}/{project}/json"
    try:
        with urllib.request.urlopen(  # noqa: S310 (a constant https URL)
            url, timeout=LOOKUP_TIMEOUT, context=_ssl_context()
        ) as reply:
            releases = json.load(reply).get("releases") or {}
    except urllib.error.HTTPError as error:
        raise ImageError(f"looking up {url}: HTTP {error.code}") from error
    except (OSError, ValueError) as error:
        raise ImageError(
            f"looking up {url} (bounded to {LOOKUP_TIMEOUT:.0f} s): {error}"
        ) from error
    files = releases.get(version)
    if not files:
        raise ImageError(f"{project} {version} is not on PyPI: check dask_chart_dask_version")
    uploaded = max(datetime.datetime.fromisoformat(f["upload_time_iso_8601"]) for f in files)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"uploaded": uploaded.isoformat()}) + "\n")
    return uploaded


def cutoff_for(release: datetime.datetime, python: str = IMAGE_PYTHON) -> datetime.datetime:
    """The day after the release, but never before `python` had the wheels."""
    floor = PYTHON_WHEELS_SINCE.get(python)
    cutoff = release + RELEASE_GRACE
    return max(cutoff, floor) if floor else cutoff


def resolve(dask_version: str, python: str, releases_dir: Path, work_dir: Path) -> WheelSet:
    """Resolve the notebook image's requirements with pip (metadata only, nothing installed)."""
    release = max(upload_time(p, dask_version, releases_dir) for p in RELEASED_PROJECTS)
    cutoff = cutoff_for(release).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = work_dir / "resolution.json"
    argv = [
        *host_pip(python),
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        str(report),
        "--index-url",
        PYPI_INDEX,
        "--uploaded-prior-to",
        cutoff,
        *target_options(),
        *base_requirements(dask_version),
        *notebook_requirements(),
    ]
    run(argv, f"resolving the wheels of Dask {dask_version}", RESOLVE_TIMEOUT)
    wheels = []
    for item in json.loads(report.read_text())["install"]:
        url = item["download_info"]["url"]
        wheels.append(
            Wheel(
                name=item["metadata"]["name"].lower(),
                version=item["metadata"]["version"],
                filename=url.rsplit("/", 1)[-1],
                sha256=item["download_info"]["archive_info"]["hashes"]["sha256"],
            )
        )
    return WheelSet(dask_version, cutoff, tuple(sorted(wheels, key=lambda w: w.name)))


def sha256_of(path: Path) -> str:
    import hashlib  # noqa: PLC0415 (only the cold path hashes wheels)

    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def download(wheel_set: WheelSet, python: str, files_dir: Path, work_dir: Path) -> int:
    """Download the wheels files_dir lacks (pip checks each hash); return how many it fetched."""
    files_dir.mkdir(parents=True, exist_ok=True)
    missing = [w for w in wheel_set.wheels if not (files_dir / w.filename).exists()]
    if missing:
        requirements = work_dir / "download-requirements.txt"
        requirements.write_text(
            "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in missing)
        )
        argv = [
            *host_pip(python),
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--index-url",
            PYPI_INDEX,
            "--dest",
            str(files_dir),
            *target_options(),
            "-r",
            str(requirements),
        ]
        run(argv, f"downloading {len(missing)} wheels", DOWNLOAD_TIMEOUT)
    for wheel in wheel_set.wheels:
        path = files_dir / wheel.filename
        if not path.exists() or sha256_of(path) != wheel.sha256:
            raise ImageError(
                f"{path} is missing or does not match its sha256 {wheel.sha256} after download"
            )
    return len(missing)
