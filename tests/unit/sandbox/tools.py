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
