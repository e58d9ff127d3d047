"""Medians, ratios and differences: every figure is a median of runs, every comparison
of two figures is made per run (pairs measured back to back), then its median taken."""

import statistics
from collections.abc import Iterable


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that were measured (None: a run that produced no figure)."""
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def summarize(samples: list[float | None]) -> dict:
    """Median, spread and the samples themselves, rounded for the results file."""
    measured = [v for v in samples if v is not None]
    return {
        "median": _round(median(measured)),
        "min": _round(min(measured)) if measured else None,
        "max": _round(max(measured)) if measured else None,
        "runs": len(measured),
        "failed_runs": len(samples) - len(measured),
        "samples": [_round(v) for v in samples],
    }


def paired_ratios(pairs: list[tuple[float | None, float | None]]) -> dict:
    """Ratios of (ours, baseline) pairs measured back to back in the same run.

    The median of the per-pair ratios is the figure compared with the targets:
    pairing cancels most of the machine's drift between runs. The ratio of the
    two medians is reported next to it.
    """
    per_pair = [ratio(ours, baseline) for ours, baseline in pairs]
    ours_median = median(ours for ours, _ in pairs)
    baseline_median = median(baseline for _, baseline in pairs)
    return {
        "median_of_ratios": _round(median(per_pair)),
        "ratio_of_medians": _round(ratio(ours_median, baseline_median)),
        "per_run": [_round(r) for r in per_pair],
    }


def paired_differences(pairs: list[tuple[float | None, float | None]]) -> dict:
    """ours - baseline of (ours, baseline) pairs measured back to back in the same run.

    The overhead of ours over the baseline: its per-pair median is compared with the
    targets, as for paired_ratios.
    """
    per_pair = [
        None if ours is None or baseline is None else ours - baseline for ours, baseline in pairs
    ]
    return {
        "median_of_differences": _round(median(per_pair)),
        "per_run": [_round(d) for d in per_pair],
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
