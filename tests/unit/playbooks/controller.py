"""ansible-playbook runs on the controller only, as a user types them at the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def ansible_playbook(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The venv's ansible-playbook with `args`, HOME and temporary files under tmp_path.

    env: more environment variables for the run.
    """
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={
            "PATH": f"{ANSIBLE_PLAYBOOK.parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            **(env or {}),
        },
    )
