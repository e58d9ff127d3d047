"""The action plugins that run our modules' logic in-process (plugins/plugin_utils/in_process.py).

Here the plugin class itself, with a stand-in task and connection: the module's
argument spec and rules, the task environment applied and restored, no_log
values removed, and the fall-back to _execute_module off a local connection.
tests/unit/playbooks/test_in_process_playbook.py runs them in ansible-playbook.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.dask_gke.core.plugins.action import wait_for_lb_ip as lb_action
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import TaskFailure
from ansible_collections.dask_gke.core.plugins.modules import wait_for_lb_ip
from ansible_collections.dask_gke.core.plugins.plugin_utils.in_process import (
    ControllerContext,
    environment_applied,
)

VAR = "DASK_GKE_TEST_IN_PROCESS"


class Logic:
    """Stands in for a module: wait_for_lb_ip's argument spec, a recording run()."""

    ARGUMENT_RULES = wait_for_lb_ip.ARGUMENT_RULES

    def __init__(self, outcome=None, failure=None):
        self.outcome = outcome or {"changed": False, "services": {}}
        self.failure = failure
        self.calls = []

    @staticmethod
    def argument_spec():
        return wait_for_lb_ip.argument_spec()

    def run(self, params, task):
        self.calls.append(
            {"params": dict(params), "check_mode": task.check_mode, "env": os.environ.get(VAR)}
        )
        task.warn("a warning from the logic")
        if self.failure:
            raise self.failure
        return dict(self.outcome)


def action(args, *, logic=None, transport="local", environment=None, become=False, check=False):
    task = SimpleNamespace(
        args=args,
        action="dask_gke.core.wait_for_lb_ip",
        async_val=0,
        check_mode=check,
        environment=environment,
        no_log=False,
    )
    connection = mock.Mock(transport=transport, has_native_async=False)
    connection._shell.tmpdir = None
    templar = mock.Mock()
    templar.template.side_effect = lambda value: value
    plugin = lb_action.ActionModule(
        task, connection, SimpleNamespace(become=become), loader=None, templar=templar
    )
    if logic is not None:
        plugin.module = logic
    plugin._execute_module = mock.Mock(return_value={"changed": False, "from": "module"})
    plugin._remove_tmp_path = mock.Mock()
    return plugin


ARGS = {"names": ["dask-scheduler"], "namespace": "dask", "timeout": 5}


def test_the_real_module_is_the_plugins_logic():
    assert lb_action.ActionModule.import_error is None
    assert lb_action.ActionModule.module is wait_for_lb_ip


def test_local_runs_the_logic_with_validated_params_and_check_mode():
    logic = Logic()
    result = action({"name": ["dask-scheduler"]}, logic=logic, check=True).run(task_vars={})
    assert result == {
        "changed": False,
        "services": {},
        "warnings": ["a warning from the logic"],
    }
    (call,) = logic.calls
    assert call["check_mode"] is True
    # The alias, the defaults and the connection options as AnsibleModule gives them.
    assert call["params"]["names"] == ["dask-scheduler"]
    assert call["params"]["namespace"] == "default"
    assert call["params"]["timeout"] == 300
    assert call["params"]["accept_hostname"] is True
    assert call["params"]["api_key"] is None


def test_the_task_environment_applies_during_the_call_and_is_restored(monkeypatch):
    monkeypatch.setenv(VAR, "the controller's")
    logic = Logic()
    environment = [{VAR: "the task's"}, {"NO_PROXY": "127.0.0.1"}]
    action(ARGS, logic=logic, environment=environment).run(task_vars={})
    assert logic.calls[0]["env"] == "the task's"
    assert os.environ[VAR] == "the controller's"


def test_the_environment_is_restored_after_a_failure(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    logic = Logic(failure=TaskFailure("it broke", pending=[]))
    result = action(ARGS, logic=logic, environment={VAR: "set"}).run(task_vars={})
    assert logic.calls[0]["env"] == "set"
    assert VAR not in os.environ
    assert result["failed"] is True
    assert result["msg"] == "it broke"
    assert result["pending"] == []


def test_no_log_values_never_reach_the_result():
    secret = "sekret-token-123"
    logic = Logic(outcome={"changed": False, "note": f"used {secret}"})
    result = action({**ARGS, "api_key": secret}, logic=logic).run(task_vars={})
    assert secret not in repr(result)
    assert result["note"] == "used ********"


def test_secrets_of_an_inline_kubeconfig_are_removed():
    token = "inline-kubeconfig-token"
    kubeconfig = {"users": [{"name": "u", "user": {"token": token}}]}
    logic = Logic(failure=TaskFailure(f"rejected {token}"))
    result = action({**ARGS, "kubeconfig": kubeconfig}, logic=logic).run(task_vars={})
    assert token not in repr(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"names": ["a"], "label_selector": "app=dask"}, "mutually exclusive"),
        ({}, "one of the following is required"),
        ({"names": ["a"], "timeout": "soon"}, "timeout"),
        ({"names": ["a"], "colour": "red"}, "Unsupported parameters"),
    ],
)
def test_the_modules_argument_rules_fail_before_the_logic(args, message):
    logic = Logic()
    with pytest.raises(AnsibleActionFail, match=message):
        action(args, logic=logic).run(task_vars={})
    assert logic.calls == []


@pytest.mark.parametrize(
    "where", [{"transport": "ssh"}, {"become": True}], ids=["remote-connection", "become"]
)
def test_other_connections_run_the_module_itself(where):
    logic = Logic()
    plugin = action(ARGS, logic=logic, **where)
    result = plugin.run(task_vars={"x": 1})
    assert result == {"changed": False, "from": "module"}
    assert logic.calls == []
    plugin._execute_module.assert_called_once_with(task_vars={"x": 1}, wrap_async=False)


def test_a_missing_library_fails_clearly_in_process(monkeypatch):
    plugin = action(ARGS)
    monkeypatch.setattr(plugin, "import_error", ImportError("No module named 'kubernetes'"))
    needs = r"needs the kubernetes Python library .*kubernetes'"
    with pytest.raises(AnsibleActionFail, match=needs):
        plugin.run(task_vars={})


def test_environment_applied_sets_unsets_and_restores(monkeypatch):
    monkeypatch.setenv("GCP_TEST_ONE", "1")
    monkeypatch.setenv(VAR, "before")
    monkeypatch.delenv("DASK_GKE_TEST_NEW", raising=False)
    with (
        pytest.raises(RuntimeError),
        environment_applied({VAR: "during", "DASK_GKE_TEST_NEW": 2}, unset_prefixes=("GCP_TEST_",)),
    ):
        assert os.environ[VAR] == "during"
        assert os.environ["DASK_GKE_TEST_NEW"] == "2"
        assert "GCP_TEST_ONE" not in os.environ
        raise RuntimeError
    assert os.environ[VAR] == "before"
    assert os.environ["GCP_TEST_ONE"] == "1"
    assert "DASK_GKE_TEST_NEW" not in os.environ


def test_a_program_run_in_process_sees_the_environment_and_is_bounded(monkeypatch):
    monkeypatch.setenv(VAR, "applied")
    task = ControllerContext()
    rc, stdout, _ = task.run_command(
        ["/bin/sh", "-c", f'echo "${VAR} $EXTRA"'], environ_update={"EXTRA": "added"}
    )
    assert (rc, stdout) == (0, "applied added\n")
    started = time.monotonic()
    with pytest.raises(TaskFailure, match=r"did not finish within 0\.3 seconds") as stopped:
        task.run_command(["/bin/sh", "-c", "echo starting; exec sleep 30"], timeout=0.3)
    assert time.monotonic() - started < 5
    assert stopped.value.result["stdout"] == "starting\n"
