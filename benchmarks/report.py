"""The README's table of the latest figures, rendered from benchmarks/results/*.json."""

import re
from pathlib import Path

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if round(value, digits) == 0:
            value = 0.0  # no "-0.000"
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[met]


Row = tuple[str, str, str, bool | None]  # measure, figure, target, met


def _median(summary: dict, unit: str = " s", digits: int = 1) -> str:
    return _fmt(summary["median"], unit, digits)


def _versus(ours: dict, baseline: dict) -> str:
    """The median walls of two measurements: "75.0 s vs 50.0 s"."""
    return f"{_median(ours['wall'])} vs {_median(baseline['wall'])}"


def _ratio(result: dict) -> str:
    return _fmt(result["ratio"]["median_of_ratios"], "x", 2)


def _deploy_rows(deploy: dict) -> list[Row]:
    figure = f"{_versus(deploy['deploy'], deploy['raw'])}: **{_ratio(deploy)}**"
    target = deploy["target"]
    measure = "Full deploy vs raw script (from nothing to endpoints)"
    return [(measure, figure, f"<= {target['max_ratio']}x", target["met"])]


def _rerun_rows(rerun: dict) -> list[Row]:
    figure = (
        f"{_median(rerun['wall'])}, changed={rerun['changed_max']}, "
        f"GKE calls {_median(rerun['gke_calls'], '')} (writes {rerun['gke_writes_max']}), "
        f"Kubernetes reads {_median(rerun['k8s_reads'], '')} (writes {rerun['k8s_writes_max']})"
    )
    target = rerun["target"]
    limit = f"<= {target['max_seconds']} s, 0 changed, 0 writes"
    return [("Converged re-run of deploy.yml", figure, limit, target["met"])]


def _upgrade_rows(upgrade: dict) -> list[Row]:
    overhead = _fmt(upgrade["overhead"]["median_of_differences"], " s")
    figure = f"{_versus(upgrade['ansible'], upgrade['raw'])}: **+{overhead}** ({_ratio(upgrade)})"
    target = upgrade["target"]
    measure = "--tags upgrade (one value) vs helm upgrade --wait + LB wait"
    return [(measure, figure, f"<= +{target['max_overhead_seconds']} s", target["met"])]


def _lbwait_rows(lbwait: dict) -> list[Row]:
    exit_latency = lbwait.get("process_exit_latency", {}).get("median")
    figure = (
        f"{_median(lbwait['return_latency'], digits=3)} "
        f"(seen after {_median(lbwait['seen_latency'], digits=3)}; the `ansible` "
        f"process exits after {_fmt(exit_latency, ' s', 2)}; "
        f"{lbwait['return_latency']['runs']} valid runs)"
    )
    measure = "LB wait latency (IP assigned -> wait_for_lb_ip returns)"
    return [(measure, figure, "<= 1 s", lbwait["target"]["met"])]


def _scale_rows(scale: dict) -> list[Row]:
    table = [
        (
            f"Scale: {point['nodes']} nodes, {point['workers']} workers",
            f"{_median(point['wall'])}, peak RSS {_median(point['peak_rss_mib'], ' MiB', 0)}, "
            f"wait reads {_median(point['wait_reads'], '', 0)}, "
            f"{point['ok_runs']}/{point['ok_runs'] + point['failed_runs']} ok",
            "no error",
            point["failed_runs"] == 0,
        )
        for point in scale["points"]
    ]
    wait_calls = scale["wait_calls"]
    measure = "Scale: wait API calls constant in the number of workers"
    return [*table, (measure, wait_calls["detail"], "constant", wait_calls["met"])]


# The table's rows, scenario by scenario, in the order of the table.
SCENARIO_ROWS = {
    "deploy": _deploy_rows,
    "rerun": _rerun_rows,
    "upgrade": _upgrade_rows,
    "lbwait": _lbwait_rows,
    "scale": _scale_rows,
}


def rows(results: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) for each scenario present in `results`."""
    return [
        (measure, figure, target, _verdict(met))
        for scenario, scenario_rows in SCENARIO_ROWS.items()
        if (result := results.get(scenario))
        for measure, figure, target, met in scenario_rows(result)
    ]


def render(results: dict[str, dict], machine: dict | None) -> str:
    lines = [START, ""]
    if machine:
        load = ", ".join(f"{value:.1f}" for value in machine.get("load_average", []))
        busy = machine.get("busy_at_start") or []
        lines += [
            f"Measured {machine.get('date', '?')} on {machine.get('description', '?')}; "
            f"commit {machine.get('commit', '?')}; load average at the start {load or 'n/a'}"
            + (f", with {len(busy)} other test run(s) using the CPUs" if busy else "")
            + ".",
            "",
        ]
    lines += ["| measure | median figure | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows(results)]
    generated = [
        f"{name} {result['generated']}" + (f" ({result['commit']})" if result.get("commit") else "")
        for name, result in results.items()
        if result.get("generated")
    ]
    if generated:
        lines += ["", f"Results measured (UTC): {', '.join(generated)}."]
    lines += ["", END]
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> None:
    """Replace the text between the markers (or append it) and keep the rest of the README."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: table, text)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + table + "\n"
    readme.write_text(text, encoding="utf-8")
