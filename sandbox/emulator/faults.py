"""Fault settings of the sandbox (the admin API's PUT/DELETE /faults).

Omitted keys are off. Counters count down as faults are applied; a stuck
operation stays RUNNING until the fault settings are cleared (DELETE /faults),
then carries on as a normal operation.
"""

import threading
import time
from dataclasses import dataclass

from sandbox.emulator.gke import OPERATION_TYPES

HTTP_ERROR_CODES = (429, 503)
OPERATION_MODES = ("stuck", "fail", "slow")
FAILED_MESSAGE = "Sandbox fault injection: the operation failed."


class FaultSettingsError(ValueError):
    """A PUT /faults body that does not follow the contract."""


@dataclass
class OperationFault:
    mode: str
    seconds: float
    released: threading.Event

    def apply(self) -> str | None:
        """Delay or block the operation; return an error message to fail it, else None."""
        if self.mode == "fail":
            return FAILED_MESSAGE
        if self.mode == "slow":
            time.sleep(self.seconds)
        elif self.mode == "stuck":
            self.released.wait()  # by design: only DELETE /faults releases a stuck operation
        return None


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultSettingsError(f"{name} must be a positive integer, got {value!r}")
    return value


def validate(settings) -> dict:
    """Check a PUT /faults body; return it normalised (defaults filled in)."""
    if not isinstance(settings, dict):
        raise FaultSettingsError("the fault settings must be a JSON object")
    unknown = set(settings) - {
        "http_errors",
        "operations",
        "load_balancer",
        "lb_delay_ms",
        "lb_cleanup_delay_ms",
    }
    if unknown:
        raise FaultSettingsError(f"unknown fault settings: {sorted(unknown)}")
    result = {}
    if settings.get("http_errors") is not None:
        http = settings["http_errors"]
        if not isinstance(http, dict) or http.get("code") not in HTTP_ERROR_CODES:
            raise FaultSettingsError(f"http_errors.code must be one of {HTTP_ERROR_CODES}")
        result["http_errors"] = {
            "code": http["code"],
            "count": _positive_int(http.get("count", 1), "http_errors.count"),
        }
    if settings.get("operations") is not None:
        ops = settings["operations"]
        if not isinstance(ops, dict) or ops.get("mode") not in OPERATION_MODES:
            raise FaultSettingsError(f"operations.mode must be one of {OPERATION_MODES}")
        types = ops.get("types", list(OPERATION_TYPES))
        if not isinstance(types, list) or not set(types) <= set(OPERATION_TYPES):
            raise FaultSettingsError(f"operations.types must be a list of {OPERATION_TYPES}")
        seconds = ops.get("seconds", 5)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise FaultSettingsError(f"operations.seconds must be >= 0, got {seconds!r}")
        result["operations"] = {
            "mode": ops["mode"],
            "seconds": seconds,
            "count": _positive_int(ops.get("count", 1), "operations.count"),
            "types": types,
        }
    result.update(_load_balancer_settings(settings))
    return result


def _load_balancer_settings(settings: dict) -> dict:
    result = {}
    if settings.get("load_balancer") is not None:
        lb = settings["load_balancer"]
        if not isinstance(lb, dict) or not isinstance(lb.get("assign", True), bool):
            raise FaultSettingsError("load_balancer.assign must be a boolean")
        result["load_balancer"] = {"assign": lb.get("assign", True)}
    for name in ("lb_delay_ms", "lb_cleanup_delay_ms"):
        if settings.get(name) is not None:
            delay = settings[name]
            if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
                raise FaultSettingsError(f"{name} must be an integer >= 0, got {delay!r}")
            result[name] = delay
    return result


class Faults:
    """Current fault settings, shared by the API handler and the operation workers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._settings: dict = {}
        self._released = threading.Event()

    def get(self) -> dict:
        with self._lock:
            return {k: dict(v) if isinstance(v, dict) else v for k, v in self._settings.items()}

    def replace(self, settings) -> dict:
        normalised = validate(settings)
        with self._lock:
            self._settings = normalised
        return normalised

    def clear(self) -> None:
        with self._lock:
            self._settings = {}
            self._released.set()
            self._released = threading.Event()

    def take_http_error(self) -> int | None:
        """The HTTP code the next GKE API call must answer, counting the burst down."""
        with self._lock:
            http = self._settings.get("http_errors")
            if not http:
                return None
            http["count"] -= 1
            if http["count"] <= 0:
                del self._settings["http_errors"]
            return http["code"]

    def take_operation_fault(self, operation_type: str) -> OperationFault | None:
        with self._lock:
            ops = self._settings.get("operations")
            if not ops or operation_type not in ops["types"]:
                return None
            ops["count"] -= 1
            if ops["count"] <= 0:
                del self._settings["operations"]
            return OperationFault(ops["mode"], ops["seconds"], self._released)
