"""External commands, the two ways the sandbox and the benchmarks run them.

- run_bounded: a short command whose output is read, bounded in time; a time-out or
  a program that cannot start raises CommandError naming the command (and the bound).
  The exit code is the caller's to judge.
- start_logged: a long-running process in its own session, writing to a log file.
"""

import shlex
import subprocess


class CommandError(Exception):
    """A bounded command ran out of time or could not start; the message says which."""


def run_bounded(
    argv: list[str], timeout: float, *, shown: str | None = None, **options
) -> subprocess.CompletedProcess:
    """Run argv (no shell) with its output captured as text, for at most `timeout` s.

    `shown` names the command in errors (default: argv itself; pass a name when argv
    carries a secret). `options` are subprocess.run's env, cwd and input; without
    input, stdin is /dev/null.
    """
    shown = shlex.join(argv) if shown is None else shown
    if options.get("input") is None:
        options["stdin"] = subprocess.DEVNULL
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, **options
        )
    except subprocess.TimeoutExpired as expired:
        raise CommandError(f"gave up after {timeout:g} s waiting for {shown}") from expired
    except OSError as error:
        raise CommandError(f"cannot run {shown}: {error}") from error


def start_logged(argv: list[str], log_file, **options) -> subprocess.Popen:
    """Start argv (no shell) in its own session, stdin from /dev/null, stdout and stderr
    to `log_file` (an open file). Its own session: a signal to its process group reaches
    its whole tree, and only it. `options` are subprocess.Popen's env and cwd."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **options,
    )
