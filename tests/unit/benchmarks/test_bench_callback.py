"""The dask_gke_bench callback, through a real ansible-playbook run (no sandbox needed)."""

import sys

from benchmarks import ansible_run, timings

PLAYBOOK = """\
- name: Preflight
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check something
      ansible.builtin.assert:
        that: [true]

- name: Work
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Change something
      ansible.builtin.command: "true"
    - name: ready | Wait for nothing
      ansible.builtin.pause:
        seconds: 1
    - name: Skip something
      ansible.builtin.debug:
        msg: never
      when: false
"""


def test_callback_records_tasks_recap_and_wait_scrapes(tmp_path):
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(PLAYBOOK)
    run = ansible_run.playbook(
        [
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        tmp_path,
        "callback-test",
        timeout=120,
        kubeconfig=tmp_path / "no-kubeconfig",
    )
    assert run.ok, run.output_tail
    document = run.timings
    assert [(t["play"], t["task"], t["status"], t["changed"]) for t in document["tasks"]] == [
        ("Preflight", "Check something", "ok", False),
        ("Work", "Change something", "ok", True),
        ("Work", "ready | Wait for nothing", "ok", False),
        ("Work", "Skip something", "skipped", False),
    ]
    assert timings.recap_totals(document)["changed"] == 1
    printed = timings.parse_recap(run.log.read_text())
    assert printed["localhost"]["changed"] == 1
    waits = timings.wait_api_calls(document)
    assert [w["task"] for w in waits] == ["ready | Wait for nothing"]
    assert "no kubeconfig" in waits[0]["error"]
    phases = timings.phase_breakdown(document, run.started, run.ended)
    assert phases["play: Work"] >= 1.0  # the pause
    assert abs(sum(phases.values()) - run.wall) < 0.01
    assert run.peak_rss_bytes > 20 * 1024 * 1024  # an ansible-playbook process is bigger
