"""Running a program from a test: the one way the sandbox and collection tests do it."""

import subprocess


def run(argv, *, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """argv (paths welcome) run to its end within `timeout` seconds, its output captured
    as text; a non-zero exit is the test's to judge (never raised)."""
    return subprocess.run(
        [str(arg) for arg in argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
