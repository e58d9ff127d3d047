"""Where the built sandbox tools are, for tests that need real binaries."""

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def bin_dir() -> Path:
    """The tools' bin directory: SANDBOX_BIN_DIR, else what build.sh --print says."""
    if os.environ.get("SANDBOX_BIN_DIR"):
        return Path(os.environ["SANDBOX_BIN_DIR"])
    printed = subprocess.run(
        [str(REPO_ROOT / "sandbox" / "tools" / "build.sh"), "--print"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return Path(printed.stdout.strip().splitlines()[-1])


def missing_tools(tools: tuple[str, ...]) -> list[str]:
    """The tools of `tools` that are not built (yet)."""
    return [tool for tool in tools if not os.access(bin_dir() / tool, os.X_OK)]


def helm_binary_params() -> list:
    """pytest params of the built Helm 4 (`helm`) and Helm 3 (`helm3`), skipped when unbuilt."""
    import pytest  # noqa: PLC0415 - only the tests that render charts need it

    params = []
    for name in ("helm", "helm3"):
        path = bin_dir() / name
        marks = (
            [] if os.access(path, os.X_OK) else [pytest.mark.skip(reason=f"{path} is not built")]
        )
        params.append(pytest.param(path, id=name, marks=marks))
    return params


def helm_env(home: Path) -> dict[str, str]:
    """An environment for a helm binary whose config, cache and data live under `home`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
