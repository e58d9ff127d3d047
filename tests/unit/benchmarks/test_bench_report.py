"""The README table of the latest figures."""

from benchmarks import report


def summary(median, runs=3):
    return {"median": median, "runs": runs}


RESULTS = {
    "deploy": {
        "generated": "2026-11-26T15:07Z",
        "commit": "abc1234",
        "deploy": {"wall": summary(75.0)},
        "raw": {"wall": summary(50.0)},
        "ratio": {"median_of_ratios": 1.5},
        "target": {"max_ratio": 2.5, "met": True},
    },
    "rerun": {
        "wall": summary(16.2),
        "changed_max": 0,
        "gke_calls": summary(4),
        "gke_writes_max": 0,
        "k8s_reads": summary(20),
        "k8s_writes_max": 0,
        "target": {"max_seconds": 6.0, "met": False},
    },
    "upgrade": {
        "ansible": {"wall": summary(16.0)},
        "raw": {"wall": summary(1.5)},
        "ratio": {"median_of_ratios": 10.667},
        "overhead": {"median_of_differences": 14.5},
        "target": {"max_overhead_seconds": 2.0, "met": False},
    },
    "lbwait": {
        "return_latency": summary(0.004),
        "seen_latency": summary(0.002),
        "process_exit_latency": summary(0.35),
        "target": {"met": True},
    },
    "scale": {
        "points": [
            {
                "nodes": 500,
                "workers": 1000,
                "wall": summary(300.0),
                "peak_rss_mib": summary(420.0),
                "wait_reads": summary(30),
                "ok_runs": 0,
                "failed_runs": 1,
            }
        ],
        "wait_calls": {"met": None, "detail": "needs two worker counts per node count"},
    },
}


def test_rows_state_figures_targets_and_verdicts():
    rows = report.rows(RESULTS)
    assert rows[0] == (
        "Full deploy vs raw script (from nothing to endpoints)",
        "75.0 s vs 50.0 s: **1.50x**",
        "<= 2.5x",
        "met",
    )
    assert rows[1][0] == "Converged re-run of deploy.yml"
    assert rows[1][1].startswith("16.2 s, changed=0")
    assert rows[1][2:] == ("<= 6.0 s, 0 changed, 0 writes", "**missed**")
    assert rows[2][1:] == ("16.0 s vs 1.5 s: **+14.5 s** (10.67x)", "<= +2.0 s", "**missed**")
    assert rows[3][1] == (
        "0.004 s (seen after 0.002 s; the `ansible` process exits after 0.35 s; 3 valid runs)"
    )
    assert rows[3][3] == "met"
    assert rows[4][1] == "300.0 s, peak RSS 420 MiB, wait reads 30, 0/1 ok"
    assert rows[4][3] == "**missed**"
    assert rows[5][3] == "n/a"
    assert len(rows) == 6


def test_rows_only_for_the_scenarios_measured():
    rows = report.rows({"deploy": RESULTS["deploy"]})
    assert [row[0] for row in rows] == ["Full deploy vs raw script (from nothing to endpoints)"]


def test_update_readme_replaces_only_the_marked_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Benchmarks\n\nIntro.\n\n{report.START}\nold table\n{report.END}\n\n## Method\n\nKept.\n"
    )
    machine = {
        "date": "2026-11-26 15:40 UTC",
        "description": "2 cores",
        "load_average": [2.5, 1.25, 1.0],
        "busy_at_start": ["123: pytest"],
        "commit": "abc1234",
    }
    table = report.render(RESULTS, machine)
    report.update_readme(readme, table)
    text = readme.read_text()
    assert "old table" not in text
    assert (
        "Measured 2026-11-26 15:40 UTC on 2 cores; commit abc1234; load average at the start "
        "2.5, 1.2, 1.0, "
        "with 1 other test run(s) using the CPUs." in text
    )
    assert text.startswith("# Benchmarks\n\nIntro.\n")
    assert text.endswith("## Method\n\nKept.\n")
    assert text.count(report.START) == 1
    assert "Results measured (UTC): deploy 2026-11-26T15:07Z (abc1234)." in text


def test_update_readme_appends_when_there_are_no_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n")
    report.update_readme(readme, report.render({}, None))
    assert readme.read_text().startswith(f"# Benchmarks\n\n{report.START}\n")
