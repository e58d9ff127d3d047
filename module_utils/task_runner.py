# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One implementation of a module's logic, run by the module or in-process by its action plugin.

A module's logic is a function `run(params, task) -> result` taking the validated
parameters and a TaskContext (check_mode, warn, run_command); it returns the result
dict or raises TaskFailure. The module's main() hands it an AnsibleModule through
run_as_module(); the same-named action plugin (plugins/action/) hands it a
TaskContext of its own when the task runs on the controller; each runs programs
(helm) its own way (AnsibleModule.run_command, or subprocess on the controller),
both bounded by a timeout.
"""

from __future__ import annotations

import os
import shlex
import threading

from ansible.module_utils.common.process import get_bin_path as _get_bin_path


class TaskFailure(Exception):
    """Ends the task as failed: msg plus the result keys to return with it."""

    def __init__(self, msg: str, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class TaskContext:
    """What a module's logic may ask of the task it runs in: check mode, warnings, and
    running a program (helm) with a bound on its time. It fails by raising TaskFailure."""

    def __init__(self, check_mode: bool = False):
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def run_command(self, argv: list[str], environ_update=None, timeout: float = 60):
        """(rc, stdout, stderr) of argv (no shell) with the environment plus environ_update;
        TaskFailure (timed_out) when it runs longer than `timeout` seconds."""
        raise NotImplementedError


class ModuleContext(TaskContext):
    """A TaskContext whose warnings go to the AnsibleModule (module.warn)."""

    def __init__(self, module):
        super().__init__(module.check_mode)
        self.module = module

    def warn(self, text: str) -> None:
        self.module.warn(text)

    def run_command(self, argv: list[str], environ_update=None, timeout: float = 60):
        """AnsibleModule.run_command, the process killed when `timeout` seconds have passed."""
        killed = threading.Event()
        timers = []

        def bound(process):
            def kill():
                killed.set()
                process.kill()

            timer = threading.Timer(timeout, kill)
            timer.daemon = True
            timer.start()
            timers.append(timer)

        try:
            rc, stdout, stderr = self.module.run_command(
                argv, environ_update=environ_update, before_communicate_callback=bound
            )
        finally:
            for timer in timers:
                timer.cancel()
        if killed.is_set():
            raise timed_out(argv, timeout, stdout, stderr)
        return rc, stdout, stderr


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


def find_binary(binary_path: str | None, name: str) -> str:
    """The absolute path of a program: binary_path when it is a path (it must be an executable
    file), a name without / searched on PATH, or `name` on PATH when binary_path is unset."""
    if binary_path is None or os.sep not in binary_path:
        return find_program(binary_path or name)
    if not (os.path.isfile(binary_path) and os.access(binary_path, os.X_OK)):
        raise TaskFailure(
            f"binary_path={binary_path!r} is not an executable file; "
            f"set binary_path to the {name} binary or leave it unset to search PATH."
        )
    return os.path.abspath(binary_path)


def timed_out(argv: list[str], timeout: float, stdout="", stderr="") -> TaskFailure:
    """The failure of a program stopped after `timeout` seconds."""
    command = shlex.join(argv)
    return TaskFailure(
        f"'{command}' did not finish within {timeout} seconds and was stopped",
        command=command,
        stdout=_text(stdout),
        stderr=_text(stderr),
    )


def _text(output) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
