"""External commands with a bound, and progress lines with step timings."""

import shlex
import sys
import time
from contextlib import contextmanager

from sandbox.subprocesses import CommandError, run_bounded

OUTPUT_TAIL = 3000  # characters of a failed command's output put in the error


class ImageError(Exception):
    """A build or import failure; the message names the image or the step."""


def info(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def run(
    argv: list[str],
    what: str,
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    cwd=None,
) -> str:
    """Run argv, return its stdout; ImageError naming `what` on failure or time-out.

    stderr is kept for the error message; stdout is returned (small outputs only).
    """
    try:
        result = run_bounded(argv, timeout, env=env, cwd=cwd)
    except CommandError as error:
        raise ImageError(f"{what}: {error}") from error
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-OUTPUT_TAIL:]
        raise ImageError(
            f"{what}: {shlex.join(argv)} failed with exit code {result.returncode}:\n{output}"
        )
    return result.stdout


@contextmanager
def step(name: str):
    """Print the start and the duration of one build step."""
    start = time.monotonic()
    info(f"{name} ...")
    yield
    info(f"{name} done in {time.monotonic() - start:.1f} s")
