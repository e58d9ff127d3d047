"""Bad variable sets of the cluster, Helm and teardown roles: each run fails before any GKE
call, naming the variable at fault (the chart's own bad inputs: test_chart_input.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import harness

RUN_TIMEOUT = 180  # seconds; a preflight failure needs a few

# (playbook, extra variables, variable the failure must name)
BAD_INPUTS = harness.load_cases(
    Path(__file__).with_name("bad_inputs.yml"), "playbook", "vars", "variable"
)


def test_valid_input_passed_the_preflight_without_any_call(admin):
    # The converge ran the preflight with valid input: the control of the table below.
    calls = admin.requests()
    assert calls == [], harness.describe_requests(calls)


def test_preflight_tag_alone_checks_a_never_deployed_cluster(admin):
    # `--tags preflight` checks the inputs and stops: it needs no earlier deploy.
    admin.clear_requests()
    run = harness.deploy(
        tags="preflight",
        extra_vars={"gke_cluster_name": "never-deployed"},
        label="preflight-tag",
        timeout=RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.describe()
    calls = admin.requests()
    assert calls == [], harness.describe_requests(calls)


@pytest.mark.parametrize(("playbook", "bad_vars", "variable"), BAD_INPUTS)
def test_bad_input_fails_before_any_call(admin, playbook, bad_vars, variable, request):
    admin.clear_requests()
    run = harness.run_playbook(
        playbook, extra_vars=bad_vars, label=request.node.callspec.id, timeout=RUN_TIMEOUT
    )
    assert run.returncode != 0, f"accepted {bad_vars}:{run.describe()}"
    assert run.failure(), f"no failure message:{run.describe()}"
    assert variable in run.failure(), f"the failure does not name {variable}:{run.describe()}"
    calls = admin.requests()
    assert calls == [], f"GKE API called despite bad input:\n{harness.describe_requests(calls)}"
