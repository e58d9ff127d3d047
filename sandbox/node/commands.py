"""Running the node's helper commands (ip, nft, ctr, crictl) with a bound and a clear error."""

from __future__ import annotations

import shlex
import subprocess

from sandbox.subprocesses import CommandError, run_bounded

DEFAULT_TIMEOUT = 30.0


class NodeError(RuntimeError):
    """A real-node step failed; the message says which step and why."""


def run(
    argv: list[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    stdin: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run argv (no shell); raise NodeError naming the command on failure or timeout."""
    try:
        result = run_bounded(argv, timeout, input=stdin)
    except CommandError as error:
        raise NodeError(str(error)) from error
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().replace("\n", " | ")
        raise NodeError(f"{shlex.join(argv)} failed ({result.returncode}): {detail}")
    return result


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """argv run inside a network namespace, in the caller's mount namespace.

    Not `ip netns exec`: it makes a new mount namespace per command, and the
    kubelet's volume mounts must be visible to containerd's runc.
    """
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
