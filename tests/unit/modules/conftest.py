"""Run our modules' main() in-process with exit_json/fail_json turned into exceptions.

The modules are imported as Ansible runs them, from the collection dask_gke.core:
pytest's pythonpath holds collections/, where collections/ansible_collections/dask_gke/core
links library/ as plugins/modules and module_utils/ as plugins/module_utils.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    """exit_json was called; .result holds what the module returned."""

    def __init__(self, result):
        super().__init__(json.dumps(result, default=str))
        self.result = result


class ModuleFail(ModuleExit):
    """fail_json was called."""


def _exit_json(self, **result):
    raise ModuleExit(result)


def _fail_json(self, msg, **result):
    raise ModuleFail({"msg": msg, "failed": True, **result})


@pytest.fixture
def run_module(monkeypatch):
    """Run a module's main() with args; return (outcome, result, warnings).

    outcome is "exit" or "fail"; warnings are the texts given to module.warn().
    """
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(main, args, check_mode=False):
        warnings = []
        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
        module_args = dict(args)
        if check_mode:
            module_args["_ansible_check_mode"] = True
        with patch_module_args(module_args):
            try:
                main()
            except ModuleFail as fail:
                return "fail", fail.result, warnings
            except ModuleExit as done:
                return "exit", done.result, warnings
        raise AssertionError("the module returned without exit_json or fail_json")

    return run
