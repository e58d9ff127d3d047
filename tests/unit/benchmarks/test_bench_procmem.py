"""Peak memory of a process tree from /proc."""

import os
import subprocess
import sys
import time

from benchmarks import procmem


def test_parse_stat_with_spaces_and_parentheses_in_the_command():
    line = "4242 (ansible-playbook (x) y) S 4200 4242 4200 0 -1 4194560 1500 0 0 0"
    assert procmem.parse_stat(line) == (4242, 4200)


def test_descendants_follow_the_whole_tree_and_nothing_else():
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20}
    assert procmem.descendants(10, parents) == {10, 11, 12, 13}
    assert procmem.descendants(13, parents) == {13}


def test_resident_bytes_reads_the_second_statm_field_in_pages():
    assert procmem.resident_bytes("1000 250 40 1 0 300 0") == 250 * procmem.PAGE_SIZE


def fake_process(proc, pid, ppid, resident_pages, command="python"):
    directory = proc / str(pid)
    directory.mkdir()
    (directory / "stat").write_text(f"{pid} ({command}) S {ppid} {pid} 0 0 -1 0\n")
    (directory / "statm").write_text(f"9999 {resident_pages} 10 1 0 100 0\n")


def test_tree_resident_bytes_sums_the_tree_of_a_fake_proc(tmp_path):
    fake_process(tmp_path, 100, 1, 1000, "ansible-playbook")
    fake_process(tmp_path, 101, 100, 200)
    fake_process(tmp_path, 102, 101, 30, "helm")
    fake_process(tmp_path, 200, 1, 5000)  # not in the tree
    (tmp_path / "self").mkdir()  # non-numeric entries are skipped
    assert procmem.tree_resident_bytes(100, tmp_path) == 1230 * procmem.PAGE_SIZE


def test_peak_tree_memory_sees_a_child_process():
    # A child that allocates about 60 MiB: the tree's peak must include it.
    code = "import time; block = bytearray(60 * 1024 * 1024); time.sleep(1.5)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        with procmem.PeakTreeMemory(os.getpid(), interval=0.05) as sampler:
            time.sleep(1.0)
    finally:
        child.wait(timeout=10)
    assert sampler.samples >= 5
    assert sampler.peak_bytes > 60 * 1024 * 1024
