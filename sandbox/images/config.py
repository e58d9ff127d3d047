"""What the sandbox images are: names, Python, Debian suite, paths. One owner per fact."""

import os
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES_DIR = Path(__file__).resolve().parent
FILES_DIR = SOURCES_DIR / "files"
PAUSE_SOURCES = SOURCES_DIR / "pause"
CHART_DEFAULTS = REPO_ROOT / "roles" / "dask_chart" / "defaults" / "main.yml"
DASK_VERSION_VARIABLE = "dask_chart_dask_version"
EXTRA_VERSIONS_VARIABLE = "DASK_GKE_SANDBOX_DASK_VERSIONS"

# The Python every sandbox image carries, as "major.minor". Upstream's default
# tag is Python 3.10; the sandbox uses Debian trixie's 3.13 because the control
# node's venv is 3.13 and cloudpickle moves functions between client and
# cluster badly across Python versions (see sandbox/README.md).
IMAGE_PYTHON = "3.13"
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# glibc of DEBIAN_SUITE: the newest manylinux tag its wheels may carry. The
# builder checks it against the built rootfs.
DEBIAN_GLIBC = (2, 41)
# Debian packages of the base rootfs. libstdc++6: pyzmq (Jupyter) and the
# dashboard; netbase: /etc/services and /etc/protocols for getservbyname.
DEBIAN_PACKAGES = (
    "python3",
    "python3-venv",
    "ca-certificates",
    "tini",
    "procps",
    "libstdc++6",
    "netbase",
)

DASK_IMAGE = "ghcr.io/dask/dask"
NOTEBOOK_IMAGE = "ghcr.io/dask/dask-notebook"
# containerd's CRI sandbox_image; our own static pause binary.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
CONDA_DIR = "/opt/conda"
NB_USER, NB_UID, NB_GID = "jovyan", 1000, 100

# Where the host's pip and the PyPI proxy find the CA bundle that trusts the
# intercepted TLS to PyPI.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PYPI_INDEX = "https://pypi.org/simple/"
PYPI_JSON = "https://pypi.org/pypi"


def cache_root() -> Path:
    """~/.cache/dask-gke (DASK_GKE_CACHE overrides, as for sandbox/tools/build.sh)."""
    if os.environ.get("DASK_GKE_CACHE"):
        return Path(os.environ["DASK_GKE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "dask-gke"


def images_cache() -> Path:
    return cache_root() / "images"


def default_dask_version(defaults_file: Path = CHART_DEFAULTS) -> str:
    """dask_chart_dask_version from the dask_chart role's defaults: the one owner of that fact."""
    try:
        defaults = yaml.safe_load(defaults_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(
            f"cannot read {DASK_VERSION_VARIABLE} from {defaults_file}: {error}"
        ) from error
    version = defaults.get(DASK_VERSION_VARIABLE)
    if not version:
        raise ValueError(f"{defaults_file} has no {DASK_VERSION_VARIABLE}")
    return str(version)


def sandbox_dask_versions() -> list[str]:
    """The Dask versions the sandbox's nodes carry: the role's default, then those of
    DASK_GKE_SANDBOX_DASK_VERSIONS (comma-separated), each once."""
    extra = os.environ.get(EXTRA_VERSIONS_VARIABLE, "")
    versions = [default_dask_version(), *(v.strip() for v in extra.split(",") if v.strip())]
    return list(dict.fromkeys(versions))


def python_tag() -> str:
    """The tag suffix upstream uses for a Python variant: -py3.13."""
    return f"-py{IMAGE_PYTHON}"
