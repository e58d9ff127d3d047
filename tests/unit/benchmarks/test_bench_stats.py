"""Medians, ratios and summaries of benchmark runs."""

import pytest

from benchmarks import stats


def test_median_ignores_runs_without_a_figure():
    assert stats.median([3.0, None, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, None, 2.0, 3.0]) == 2.5


def test_median_of_nothing_is_none():
    assert stats.median([]) is None
    assert stats.median([None, None]) is None


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(3.0, 2.0, 1.5), (None, 2.0, None), (3.0, None, None), (3.0, 0.0, None)],
)
def test_ratio(numerator, denominator, expected):
    assert stats.ratio(numerator, denominator) == expected


def test_summarize_counts_failed_runs_and_rounds():
    summary = stats.summarize([10.12345, None, 12.0, 11.0])
    assert summary == {
        "median": 11.0,
        "min": 10.123,
        "max": 12.0,
        "runs": 3,
        "failed_runs": 1,
        "samples": [10.123, None, 12.0, 11.0],
    }


def test_paired_ratios_median_of_per_run_ratios_differs_from_ratio_of_medians():
    # Run 2 was slow for both: pairing cancels it (ratio 2.0, the median of 1.0, 2.0, 3.0),
    # the medians of each side do not (12 s over 10 s).
    pairs = [(10.0, 10.0), (40.0, 20.0), (12.0, 4.0)]
    result = stats.paired_ratios(pairs)
    assert result["per_run"] == [1.0, 2.0, 3.0]
    assert result["median_of_ratios"] == 2.0
    assert result["ratio_of_medians"] == 1.2
    assert result["median_of_ratios"] != result["ratio_of_medians"]


def test_paired_ratios_skip_failed_runs():
    result = stats.paired_ratios([(None, 10.0), (20.0, 10.0)])
    assert result["per_run"] == [None, 2.0]
    assert result["median_of_ratios"] == 2.0


def test_paired_differences_are_per_run_overheads_and_skip_failed_runs():
    # Per run: 3.0, 0.5, 0.0 and a failed run. Their median (0.5) is not the
    # difference of the medians (11.0 - 9.75 = 1.25).
    pairs = [(12.0, 9.0), (10.0, 9.5), (11.0, 11.0), (None, 10.0)]
    result = stats.paired_differences(pairs)
    assert result == {"median_of_differences": 0.5, "per_run": [3.0, 0.5, 0.0, None]}
