# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One implementation of a module's logic, run by the module or in-process by its action plugin.

A module's logic is a function `run(params, task) -> result` taking the validated
parameters and a TaskContext (check_mode, warn, fail); it returns the result dict
or raises TaskFailure. The module's main() hands it an AnsibleModule through
run_as_module(); the same-named action plugin (plugins/action/) hands it a
TaskContext of its own when the task runs on the controller. Running a program
(helm) goes through run_command() here on both paths, bounded by a timeout.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from ansible.module_utils.common.process import get_bin_path as _get_bin_path


class TaskFailure(Exception):
    """Ends the task as failed: msg plus the result keys to return with it."""

    def __init__(self, msg: str, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class TaskContext:
    """What a module's logic may ask of the task it runs in: check mode, warnings, failure."""

    def __init__(self, check_mode: bool = False):
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def fail(self, msg: str, **result):
        raise TaskFailure(msg, **result)


class ModuleContext(TaskContext):
    """A TaskContext whose warnings go to the AnsibleModule (module.warn)."""

    def __init__(self, module):
        super().__init__(module.check_mode)
        self.module = module

    def warn(self, text: str) -> None:
        self.module.warn(text)


def run_as_module(module, logic) -> None:
    """main(): run logic(params, context) and exit_json with its result, or fail_json."""
    try:
        result = logic(module.params, ModuleContext(module))
    except TaskFailure as failure:
        module.fail_json(msg=failure.msg, **failure.result)
    module.exit_json(**result)


def find_program(name: str) -> str:
    """The absolute path of `name` on PATH (and the sbin directories), or TaskFailure."""
    try:
        return _get_bin_path(name)
    except ValueError as exc:
        raise TaskFailure(str(exc)) from exc


def run_command(argv: list[str], environ_update: dict | None = None, timeout: float = 60):
    """Run argv (no shell) with os.environ plus environ_update; return (rc, stdout, stderr).

    Fails (TaskFailure with command, stdout and stderr) when the program cannot be
    started or runs longer than `timeout` seconds.
    """
    command = shlex.join(argv)
    try:
        # An argv list, never a shell: the program is the user's helm binary_path.
        done = subprocess.run(  # noqa: S603 - argv list without a shell, as run_command intends
            argv,
            env={**os.environ, **(environ_update or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TaskFailure(
            f"'{command}' did not finish within {timeout} seconds",
            command=command,
            stdout=_text(exc.stdout),
            stderr=_text(exc.stderr),
        ) from exc
    except OSError as exc:
        raise TaskFailure(f"Could not run '{command}': {exc}", command=command) from exc
    return done.returncode, done.stdout, done.stderr


def _text(output) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
