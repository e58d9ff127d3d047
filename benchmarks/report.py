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


def rows(results: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) for each scenario present in `results`."""
    table = []
    if deploy := results.get("deploy"):
        table.append(
            (
                "Full deploy vs raw script (from nothing to endpoints)",
                f"{_fmt(deploy['deploy']['wall']['median'], ' s')} vs "
                f"{_fmt(deploy['raw']['wall']['median'], ' s')}: "
                f"**{_fmt(deploy['ratio']['median_of_ratios'], 'x', 2)}**",
                f"<= {deploy['target']['max_ratio']}x",
                _verdict(deploy["target"]["met"]),
            )
        )
    if rerun := results.get("rerun"):
        table.append(
            (
                "Converged re-run of deploy.yml",
                f"{_fmt(rerun['wall']['median'], ' s')}, changed={rerun['changed_max']}, "
                f"GKE calls {_fmt(rerun['gke_calls']['median'])} "
                f"(writes {rerun['gke_writes_max']}), "
                f"Kubernetes reads {_fmt(rerun['k8s_reads']['median'])} "
                f"(writes {rerun['k8s_writes_max']})",
                f"<= {rerun['target']['max_seconds']} s, 0 changed, 0 writes",
                _verdict(rerun["target"]["met"]),
            )
        )
    if upgrade := results.get("upgrade"):
        table.append(
            (
                "--tags upgrade (one value) vs helm upgrade --wait + LB wait",
                f"{_fmt(upgrade['ansible']['wall']['median'], ' s')} vs "
                f"{_fmt(upgrade['raw']['wall']['median'], ' s')}: "
                f"**+{_fmt(upgrade['overhead']['median_of_differences'], ' s')}** "
                f"({_fmt(upgrade['ratio']['median_of_ratios'], 'x', 2)})",
                f"<= +{upgrade['target']['max_overhead_seconds']} s",
                _verdict(upgrade["target"]["met"]),
            )
        )
    if lbwait := results.get("lbwait"):
        exit_latency = lbwait.get("process_exit_latency", {}).get("median")
        table.append(
            (
                "LB wait latency (IP assigned -> wait_for_lb_ip returns)",
                f"{_fmt(lbwait['return_latency']['median'], ' s', 3)} "
                f"(seen after {_fmt(lbwait['seen_latency']['median'], ' s', 3)}; the `ansible` "
                f"process exits after {_fmt(exit_latency, ' s', 2)}; "
                f"{lbwait['return_latency']['runs']} valid runs)",
                "<= 1 s",
                _verdict(lbwait["target"]["met"]),
            )
        )
    if scale := results.get("scale"):
        for point in scale["points"]:
            table.append(
                (
                    f"Scale: {point['nodes']} nodes, {point['workers']} workers",
                    f"{_fmt(point['wall']['median'], ' s')}, peak RSS "
                    f"{_fmt(point['peak_rss_mib']['median'], ' MiB', 0)}, wait reads "
                    f"{_fmt(point['wait_reads']['median'], '', 0)}, "
                    f"{point['ok_runs']}/{point['ok_runs'] + point['failed_runs']} ok",
                    "no error",
                    _verdict(point["failed_runs"] == 0),
                )
            )
        table.append(
            (
                "Scale: wait API calls constant in the number of workers",
                scale["wait_calls"]["detail"],
                "constant",
                _verdict(scale["wait_calls"]["met"]),
            )
        )
    return table


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
