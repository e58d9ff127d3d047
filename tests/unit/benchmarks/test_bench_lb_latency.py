"""LoadBalancer wait latency from the watch events and the module's result."""

from datetime import UTC, datetime

import pytest

from benchmarks import lb_latency
from benchmarks.sandbox_api import BenchError

NAMES = ["dask-scheduler", "dask-jupyter"]


def iso(epoch_seconds):
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds")


FIRST_IP_AFTER_THE_CLEAR = [
    (90.0, "dask-scheduler", True),  # the initial list, before the clear
    (90.0, "dask-jupyter", True),
    (100.1, "dask-scheduler", False),  # the clear
    (100.2, "dask-jupyter", False),
    (105.3, "dask-jupyter", True),
    (105.4, "dask-scheduler", True),
    (106.0, "dask-scheduler", True),  # a later update
    (105.5, "other", True),
]
# The watch delivered the scheduler's initial state (with its old IP) just after
# the clear started: only an IP after the scheduler's own cleared event counts.
INITIAL_EVENT_AFTER_THE_CLEAR_TIME = [
    (99.9, "dask-jupyter", True),
    (100.05, "dask-scheduler", True),  # initial ADDED, old IP
    (100.1, "dask-jupyter", False),
    (100.2, "dask-scheduler", False),
    (105.3, "dask-jupyter", True),
    (105.4, "dask-scheduler", True),
]


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(FIRST_IP_AFTER_THE_CLEAR, id="the first IP after the clear"),
        pytest.param(
            INITIAL_EVENT_AFTER_THE_CLEAR_TIME,
            id="an initial event after the clear time is not an assignment",
        ),
    ],
)
def test_assigned_times_are_the_first_ips_after_each_services_clear(events):
    assert lb_latency.assigned_times(events, NAMES, after=100.0) == {
        "dask-scheduler": 105.4,
        "dask-jupyter": 105.3,
    }


def test_assigned_times_fail_when_a_service_never_got_its_ip():
    events = [
        (100.5, "dask-scheduler", False),
        (101.0, "dask-scheduler", True),
        (100.5, "dask-jupyter", False),
    ]
    with pytest.raises(BenchError, match=r"\['dask-jupyter'\]"):
        lb_latency.assigned_times(events, NAMES, after=100.0)


def module_result(start, seen, elapsed):
    return {
        "services": {
            name: {"seen_at": iso(when), "ready_after": round(when - start, 3)}
            for name, when in seen.items()
        },
        "elapsed": elapsed,
    }


def test_latencies_of_a_module_that_was_waiting():
    result = module_result(200.0, {"dask-scheduler": 205.6, "dask-jupyter": 205.5}, 5.7)
    sample = lb_latency.latencies(result, {"dask-scheduler": 205.4, "dask-jupyter": 205.3})
    assert sample["valid"] is True
    assert sample["waiting_before_assignment"] == pytest.approx(5.3, abs=0.002)
    assert sample["seen_latency"] == pytest.approx(
        {"dask-scheduler": 0.2, "dask-jupyter": 0.2}, abs=0.002
    )
    assert sample["return_latency"] == pytest.approx(0.3, abs=0.002)  # 205.7 - 205.4


def test_a_module_started_after_the_assignment_is_not_a_valid_sample():
    result = module_result(210.0, {"dask-scheduler": 210.1, "dask-jupyter": 210.1}, 0.1)
    sample = lb_latency.latencies(result, {"dask-scheduler": 205.4, "dask-jupyter": 205.3})
    assert sample["valid"] is False
