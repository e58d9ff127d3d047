"""Fault settings of the sandbox (the admin API's PUT/DELETE /faults).

Omitted keys are off. Counters count down as faults are applied; a stuck
operation stays RUNNING until the fault settings are cleared (DELETE /faults),
then carries on as a normal operation; so does a background operation whose
`seconds` have not run out yet.
"""

import re
import threading
import time
from dataclasses import dataclass

from sandbox.emulator.gke import BACKGROUND_OPERATION_TYPES, OPERATION_TYPES

HTTP_ERROR_CODES = (429, 500, 502, 503, 504)
OPERATION_MODES = ("stuck", "fail", "slow")
BACKGROUND_TRIGGERS = ("now", "after_create")
FAILED_MESSAGE = "Sandbox fault injection: the operation failed."
PROJECT_LISTS = ("disabled_services", "missing_networks", "unavailable_machine_types")
QUOTA_METRICS = ("CPUS", "DISKS_TOTAL_GB", "SSD_TOTAL_GB", "IN_USE_ADDRESSES")


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


@dataclass
class BackgroundFault:
    type: str
    seconds: float
    released: threading.Event

    def wait(self) -> None:
        """Run for `seconds`, or until the fault settings are cleared."""
        self.released.wait(self.seconds)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultSettingsError(f"{name} must be a positive integer, got {value!r}")
    return value


def _seconds(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultSettingsError(f"{name} must be >= 0, got {value!r}")
    return value


def validate(settings) -> dict:
    """Check a PUT /faults body; return it normalised (defaults filled in)."""
    if not isinstance(settings, dict):
        raise FaultSettingsError("the fault settings must be a JSON object")
    unknown = set(settings) - set(VALIDATORS)
    if unknown:
        raise FaultSettingsError(f"unknown fault settings: {sorted(unknown)}")
    return {
        key: check(settings[key])
        for key, check in VALIDATORS.items()
        if settings.get(key) is not None
    }


def _operations(ops) -> dict:
    if not isinstance(ops, dict) or ops.get("mode") not in OPERATION_MODES:
        raise FaultSettingsError(f"operations.mode must be one of {OPERATION_MODES}")
    types = ops.get("types", list(OPERATION_TYPES))
    if not isinstance(types, list) or not set(types) <= set(OPERATION_TYPES):
        raise FaultSettingsError(f"operations.types must be a list of {OPERATION_TYPES}")
    return {
        "mode": ops["mode"],
        "seconds": _seconds(ops.get("seconds", 5), "operations.seconds"),
        "count": _positive_int(ops.get("count", 1), "operations.count"),
        "types": types,
    }


def _cluster_api(api) -> dict:
    if not isinstance(api, dict) or not isinstance(api.get("reachable", True), bool):
        raise FaultSettingsError("cluster_api.reachable must be a boolean")
    return {"reachable": api.get("reachable", True)}


def _load_balancer(lb) -> dict:
    if not isinstance(lb, dict) or not isinstance(lb.get("assign", True), bool):
        raise FaultSettingsError("load_balancer.assign must be a boolean")
    return {"assign": lb.get("assign", True)}


def _milliseconds(name: str):
    def check(delay) -> int:
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise FaultSettingsError(f"{name} must be an integer >= 0, got {delay!r}")
        return delay

    return check


def _http_errors(http) -> dict:
    if not isinstance(http, dict) or http.get("code") not in HTTP_ERROR_CODES:
        raise FaultSettingsError(f"http_errors.code must be one of {HTTP_ERROR_CODES}")
    result = {
        "code": http["code"],
        "count": _positive_int(http.get("count", 1), "http_errors.count"),
    }
    if http.get("match") is not None:
        try:
            re.compile(http["match"])
        except (re.error, TypeError) as error:
            raise FaultSettingsError(
                f"http_errors.match is not a regular expression: {error}"
            ) from None
        result["match"] = http["match"]
    if not isinstance(http.get("after", False), bool):
        raise FaultSettingsError("http_errors.after must be a boolean")
    if http.get("after"):
        result["after"] = True
    return result


def _background(background) -> dict:
    if not isinstance(background, dict) or background.get("type") not in (
        BACKGROUND_OPERATION_TYPES
    ):
        raise FaultSettingsError(
            f"background_operations.type must be one of {BACKGROUND_OPERATION_TYPES}"
        )
    trigger = background.get("trigger", "now")
    if trigger not in BACKGROUND_TRIGGERS:
        raise FaultSettingsError(
            f"background_operations.trigger must be one of {BACKGROUND_TRIGGERS}"
        )
    return {
        "type": background["type"],
        "seconds": _seconds(background.get("seconds", 30), "background_operations.seconds"),
        "trigger": trigger,
        "count": _positive_int(background.get("count", 1), "background_operations.count"),
    }


def _project(project) -> dict:
    if not isinstance(project, dict):
        raise FaultSettingsError("project must be a JSON object")
    unknown = set(project) - {*PROJECT_LISTS, "quota_limits", "deny_act_as"}
    if unknown:
        raise FaultSettingsError(f"unknown project fault settings: {sorted(unknown)}")
    result = {}
    for key in PROJECT_LISTS:
        names = project.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise FaultSettingsError(f"project.{key} must be a list of names")
        if names:
            result[key] = names
    quotas = project.get("quota_limits", {})
    if not isinstance(quotas, dict) or not all(
        metric in QUOTA_METRICS
        and not isinstance(limit, bool)
        and isinstance(limit, int | float)
        and limit >= 0
        for metric, limit in quotas.items()
    ):
        raise FaultSettingsError(f"project.quota_limits must map {QUOTA_METRICS} to numbers >= 0")
    if quotas:
        result["quota_limits"] = quotas
    if not isinstance(project.get("deny_act_as", False), bool):
        raise FaultSettingsError("project.deny_act_as must be a boolean")
    if project.get("deny_act_as"):
        result["deny_act_as"] = True
    return result


VALIDATORS = {
    "http_errors": _http_errors,
    "operations": _operations,
    "background_operations": _background,
    "project": _project,
    "cluster_api": _cluster_api,
    "load_balancer": _load_balancer,
    "lb_delay_ms": _milliseconds("lb_delay_ms"),
    "lb_cleanup_delay_ms": _milliseconds("lb_cleanup_delay_ms"),
}


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

    def take_http_error(
        self, method: str = "GET", path: str = "", after: bool = False
    ) -> int | None:
        """The HTTP code this GKE API call must answer, counting the burst down.

        With `match`, only calls whose "METHOD /path" matches it count. A burst with
        `after` is taken (after=True) once the call was carried out: its answer is lost,
        as when Google's front end gives up on a backend that acted."""
        with self._lock:
            http = self._settings.get("http_errors")
            if not http or http.get("after", False) != after:
                return None
            if "match" in http and not re.search(http["match"], f"{method} {path}"):
                return None
            http["count"] -= 1
            if http["count"] <= 0:
                del self._settings["http_errors"]
            return http["code"]

    def take_background_operation(self, trigger: str) -> BackgroundFault | None:
        """The background operation to start now (`now`: on PUT; `after_create`: when a
        cluster create ends), counting it down."""
        with self._lock:
            background = self._settings.get("background_operations")
            if not background or background["trigger"] != trigger:
                return None
            background["count"] -= 1
            if background["count"] <= 0:
                del self._settings["background_operations"]
            return BackgroundFault(background["type"], background["seconds"], self._released)

    def project(self) -> dict:
        """The project fault settings ({} when the project is healthy)."""
        with self._lock:
            return dict(self._settings.get("project", {}))

    def cluster_api_reachable(self) -> bool:
        with self._lock:
            return self._settings.get("cluster_api", {}).get("reachable", True)

    def take_operation_fault(self, operation_type: str) -> OperationFault | None:
        with self._lock:
            ops = self._settings.get("operations")
            if not ops or operation_type not in ops["types"]:
                return None
            ops["count"] -= 1
            if ops["count"] <= 0:
                del self._settings["operations"]
            return OperationFault(ops["mode"], ops["seconds"], self._released)
