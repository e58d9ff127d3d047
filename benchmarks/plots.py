"""The two PNGs of make bench: deploy phases next to the raw steps, and time against workers."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

DPI = 90


def deploy_phases(deploy: dict, path: Path) -> Path:
    """One stacked bar for deploy.yml (per role) and one for the raw script (per step)."""
    bars = [
        ("deploy.yml", deploy["deploy"]["phases_median"]),
        ("raw script", deploy["raw"]["phases_median"]),
    ]
    figure, axes = plt.subplots(figsize=(8, 4.2))
    colors = plt.get_cmap("tab20").colors
    color_index = 0
    for position, (label, phases) in enumerate(bars):
        bottom = 0.0
        for name, seconds in phases.items():
            if not seconds:
                continue
            axes.barh(
                position,
                seconds,
                left=bottom,
                color=colors[color_index % len(colors)],
                edgecolor="white",
                label=f"{label}: {name}",
            )
            if seconds > 1.5:
                axes.text(
                    bottom + seconds / 2,
                    position,
                    f"{seconds:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                )
            bottom += seconds
            color_index += 1
    axes.set_yticks(range(len(bars)), [label for label, _ in bars])
    axes.set_xlabel("seconds (median of runs)")
    ratio = deploy["ratio"]["median_of_ratios"]
    axes.set_title(
        f"Full deploy vs raw tutorial steps (ratio {ratio:.2f}x)"
        if ratio
        else "Full deploy vs raw tutorial steps"
    )
    axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def scale(scale_results: dict, path: Path) -> Path:
    """Deploy time, peak memory and wait API calls against workers, one line per node count."""
    points = [p for p in scale_results["points"] if p["wall"]["median"] is not None]
    figure, (time_axes, memory_axes, calls_axes) = plt.subplots(1, 3, figsize=(11, 3.6))
    for nodes in sorted({p["nodes"] for p in points}):
        line = sorted((p for p in points if p["nodes"] == nodes), key=lambda p: p["workers"])
        workers = [p["workers"] for p in line]
        label = f"{nodes} nodes"
        time_axes.plot(workers, [p["wall"]["median"] for p in line], marker="o", label=label)
        memory_axes.plot(
            workers, [p["peak_rss_mib"]["median"] for p in line], marker="o", label=label
        )
        calls_axes.plot(workers, [p["wait_reads"]["median"] for p in line], marker="o", label=label)
    for axes, title in (
        (time_axes, "deploy.yml wall time (s)"),
        (memory_axes, "peak RSS of the process tree (MiB)"),
        (calls_axes, "Kubernetes reads by the waits"),
    ):
        axes.set_xscale("log")
        axes.set_xlabel("Dask workers")
        axes.set_title(title, fontsize=9)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    time_axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
