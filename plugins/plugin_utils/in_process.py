# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one of our modules' logic in the controller's worker process (action plugins).

A module run is a new Python process (AnsiballZ) that imports the kubernetes
client and kubernetes.core's module_utils again: about a second for a few
milliseconds of API work. Our action plugins of the same names run the module's
logic (its `run(params, task)`) in the worker instead, when the task's
connection is local; they import the kubernetes client at their top level, which
the parent ansible-playbook process does once when it loads the plugin, and
every forked worker inherits. Any other connection (a delegate_to a remote host),
become, or async runs the module itself through _execute_module.

In-process the plugin does what AnsibleModule does around the logic: validates the
arguments with the module's own argument spec and rules, applies the task's
environment to os.environ for the duration of the call (the kubernetes client
reads proxies and the K8S_AUTH_* fallbacks from there), and removes the no_log
values (api_key, password, secrets of an inline kubeconfig) from the result.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from typing import ClassVar

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

try:
    from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import (
        TaskContext,
        TaskFailure,
        timed_out,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
        extract_sensitive_values_from_kubeconfig,
    )
except ImportError as error:  # reported by the action plugin's in-process path
    TASK_RUNNER_ERROR: ImportError | None = error
    TaskContext = object
else:
    TASK_RUNNER_ERROR = None

# Paid once by the parent ansible-playbook process, which loads each task's action
# plugin (and so this file): every forked worker inherits these instead of a module
# run importing them again. Imported for that side effect only (ruff F401, pylint
# unused-import); a missing library is reported by in_process_action's plugins.
try:
    import kubernetes.client  # noqa: F401  # pylint: disable=unused-import
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s import (
        client as _k8s_client,  # noqa: F401  # pylint: disable=unused-import
    )
except ImportError as error:
    KUBERNETES_ERROR: ImportError | None = error
else:
    KUBERNETES_ERROR = None

LOCAL_TRANSPORT = "local"
MODULES = "ansible_collections.dask_gke.core.plugins.modules"


@contextlib.contextmanager
def environment_applied(
    changes: Mapping[str, object] | None = None, unset_prefixes: tuple[str, ...] = ()
) -> Iterator[None]:
    """os.environ with `changes` set and the variables starting with unset_prefixes removed,
    restored to exactly what it was on leaving (also on an exception)."""
    changes = {name: str(value) for name, value in (changes or {}).items()}
    unset = [name for name in os.environ if unset_prefixes and name.startswith(unset_prefixes)]
    touched = set(changes) | set(unset)
    saved = {name: os.environ[name] for name in touched if name in os.environ}
    try:
        for name in unset:
            del os.environ[name]
        os.environ.update(changes)
        yield
    finally:
        for name in touched:
            if name in saved:
                os.environ[name] = saved[name]
            else:
                os.environ.pop(name, None)


class ControllerContext(TaskContext):
    """The TaskContext of an in-process run: warnings collected, programs run by subprocess."""

    def run_command(self, argv: list[str], environ_update=None, timeout: float = 60):
        try:
            # An argv list, never a shell (the program is the task's helm binary_path).
            done = subprocess.run(  # noqa: S603 - argv list without a shell, see above
                argv,
                env={**os.environ, **(environ_update or {})},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="surrogateescape",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise timed_out(argv, timeout, exc.stdout, exc.stderr) from exc
        except OSError as exc:
            raise TaskFailure(f"Could not run {argv[0]}: {exc}", command=" ".join(argv)) from exc
        return done.returncode, done.stdout, done.stderr


class InProcessModuleAction(ActionBase):
    """Base of the action plugins that run a module's logic in-process on a local connection.

    in_process_action() makes the subclass of each plugin, setting `module` (the
    imported module: argument_spec(), ARGUMENT_RULES, run(params, task)),
    `import_error` (why a required import failed, or None) and `requirement` (what
    to install then).
    """

    _supports_check_mode = True
    _supports_async = True

    module = None
    import_error: ImportError | None = None
    requirement = "the kubernetes Python library and the kubernetes.core collection"
    VALIDATION_RULES: ClassVar[tuple[str, ...]] = (
        "mutually_exclusive",
        "required_together",
        "required_one_of",
        "required_if",
        "required_by",
    )

    def runs_in_process(self) -> bool:
        """Whether the module's logic runs here: a local connection, no become, no async."""
        return (
            getattr(self._connection, "transport", None) == LOCAL_TRANSPORT
            and not self._play_context.become
            and not self._task.async_val
        )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self.runs_in_process():
            wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
            result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        error = self.import_error or TASK_RUNNER_ERROR
        if error is not None or self.module is None:
            raise AnsibleActionFail(
                f"{self._task.action} needs {self.requirement} on the controller to run "
                f"in-process ({error}); install them (see requirements.txt and requirements.yml)"
            )
        result.update(self.run_in_process())
        return result

    def run_in_process(self) -> dict:
        rules = getattr(self.module, "ARGUMENT_RULES", {})
        validation, params = self.validate_argument_spec(
            argument_spec=self.module.argument_spec(),
            **{rule: rules[rule] for rule in self.VALIDATION_RULES if rule in rules},
        )
        no_log_values = set(validation._no_log_values)
        kubeconfig = params.get("kubeconfig")
        if isinstance(kubeconfig, dict):
            no_log_values.update(extract_sensitive_values_from_kubeconfig(kubeconfig))
        environment: dict = {}
        self._compute_environment_string(environment)
        task = ControllerContext(check_mode=bool(self._task.check_mode))
        with environment_applied(environment):
            try:
                outcome = self.module.run(params, task)
            except TaskFailure as failure:
                outcome = {"failed": True, "msg": failure.msg, **failure.result}
        if task.warnings:
            outcome["warnings"] = list(task.warnings)
        return remove_values(outcome, no_log_values)


def in_process_action(name: str, *, needs_kubernetes: bool = True, requirement: str = ""):
    """The ActionModule class of our module `name`: its logic in-process on a local connection.

    needs_kubernetes: whether the action cannot run in-process without the kubernetes
    library (helm_tiller_version needs it only to read Tiller, and its logic says so).
    """
    try:
        module = importlib.import_module(f"{MODULES}.{name}")
    except ImportError as error:
        module, import_error = None, error
    else:
        import_error = KUBERNETES_ERROR if needs_kubernetes else None
    attributes = {"module": module, "import_error": import_error}
    if requirement:
        attributes["requirement"] = requirement
    return type("ActionModule", (InProcessModuleAction,), attributes)
