# Copyright: (c) 2026, dask-gke contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""List + watch waiting for the dask-gke modules.

A wait here costs one LIST and then one WATCH request (more only when the
stream drops, ends, or the API server answers 410 Gone), however long it lasts
and however many objects change meanwhile, so its API calls do not grow with
the size of the rollout. The modules say what they wait for by subclassing
ListWatchWaiter; kubernetes.watch.Watch reads the streams. A subclass may cut
the watch into rounds and look at something else between them (round_seconds,
after_round): wait_for_rollout reads a stuck Deployment's Pending Pods so.
Cluster-scoped kinds (wait_for_nodes' Nodes) set `namespaced = False`; a waiter
that must ride out an API server that is not up yet says which errors are
transient (transient()), and those are retried with a backoff until the deadline.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.client import HTTPException

from ansible_collections.dask_gke.core.plugins.module_utils.k8s_client import (
    connection_argument_spec,
    describe_api_error,
)
from ansible_collections.dask_gke.core.plugins.module_utils.task_runner import TaskFailure

try:
    import urllib3
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException
except ImportError:  # reported by K8sModule's check for the kubernetes library
    ApiException = watch = urllib3 = None

# Errors meaning "the stream broke": urllib3's (ProtocolError, ReadTimeoutError,
# MaxRetryError, ...), http.client's and the socket's.
STREAM_ERRORS = (HTTPException, ConnectionError, TimeoutError) + (
    (urllib3.exceptions.HTTPError,) if urllib3 else ()
)
CONNECT_TIMEOUT = 10.0
EVENTS_PER_OBJECT = 5


class WaitFailure(Exception):
    """Ends the wait with a message for fail_json."""


def now_iso():
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def summarize_events(raw_events):
    """Recent events of one object: warnings first, then newest first."""
    events = []
    for event in raw_events:
        events.append(
            {
                "type": event.get("type") or "Normal",
                "reason": event.get("reason") or "",
                "message": (event.get("message") or "").strip(),
                "count": event.get("count") or 1,
                "last_seen": event.get("lastTimestamp")
                or event.get("eventTime")
                or event.get("firstTimestamp")
                or (event.get("metadata") or {}).get("creationTimestamp")
                or "",
            }
        )
    events.sort(key=lambda e: e["last_seen"], reverse=True)
    events.sort(key=lambda e: e["type"] != "Warning")  # stable: keeps newest first
    return events[:EVENTS_PER_OBJECT]


def recent_events(events, namespace, kind, name):
    """summarize_events for one object, or one 'EventsUnavailable' entry on error.

    events: a NamespacedResource for v1 events.
    """
    try:
        result = events.list(
            namespace,
            field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
            _request_timeout=(CONNECT_TIMEOUT, CONNECT_TIMEOUT),
        )
    except (ApiException, *STREAM_ERRORS) as exc:
        return [
            {
                "type": "Unknown",
                "reason": "EventsUnavailable",
                "count": 1,
                "message": f"could not list events: {exc}",
                "last_seen": "",
            }
        ]
    return summarize_events(result.get("items") or [])


def format_events(events):
    return " | ".join(f"{e['type']} {e['reason']}: {e['message']}" for e in events) or "no events"


def wait_argument_spec():
    """The options every waiting module takes: what to wait for, how long, and how to connect."""
    spec = connection_argument_spec()
    spec.update(
        namespace={"type": "str", "default": "default"},
        names={"type": "list", "elements": "str", "aliases": ["name"]},
        label_selector={"type": "str"},
        timeout={"type": "int", "default": 300},
    )
    return spec


# The rules of every waiting module besides its argument spec (supports_check_mode
# is the AnsibleModule's; the action plugins declare check mode support themselves).
WAIT_ARGUMENT_RULES = {
    "mutually_exclusive": [("names", "label_selector")],
    "required_one_of": [("names", "label_selector")],
}


def check_wait_params(params, noun):
    """Fail (TaskFailure) on a timeout or names no wait could use, before any API call."""
    if params["timeout"] <= 0:
        raise TaskFailure(f"timeout={params['timeout']} must be a positive number of seconds")
    if params["names"] is not None and not [n for n in params["names"] if n]:
        raise TaskFailure(f"names is empty; give at least one {noun} name or a label_selector")


def finish_wait(task, waiter):
    """Wait; return the waiter's result, or raise TaskFailure with what is still pending."""
    try:
        waiter.wait()
    except WaitFailure as exc:
        pending = waiter.timed_out_pending
        if pending is None:
            pending = waiter.pending()
        raise TaskFailure(str(exc), pending=pending, **waiter.result()) from exc
    if task.check_mode:
        # What would fail outside check mode is worth a warning here.
        for reason in waiter.problems().values():
            task.warn(reason)
    return {"pending": waiter.pending(), **waiter.result()}


class ListWatchWaiter:
    """Lists the objects once, then follows a watch until done() or the deadline.

    `resources` lists and watches the objects and `events` their Events (both
    k8s_client.NamespacedResource). Keeps the latest copy of each object in
    `objects` (by name; only `names` when given); whenever one changes, notes
    when each wanted object became ready and fails at once on a problem.
    Subclasses say what they wait for: `kind`, `plural` (for messages),
    `namespaced` (False: cluster-scoped, `resources` a k8s_client.ClusterResource),
    wanted(), ready(name), problems(), pending(), timeout_message() and
    ready_fields() (their part of result()). The watch resumes from the last
    resourceVersion when it drops or ends, and lists again on 410 Gone. Every
    request is bounded by the time left. Errors for which transient() is true
    (none here) are retried until the deadline, then end in timeout_message().
    """

    kind = "object"
    plural = "objects"
    namespaced = True

    def __init__(self, resources, events, params, check_mode=False, clock=time.monotonic):
        """params: the module's namespace (if namespaced), names, label_selector and timeout."""
        self.resources = resources
        self.events = events
        self.namespace = params["namespace"] if self.namespaced else None
        self.names = params.get("names")
        self.selector = params["label_selector"]
        self.timeout = params["timeout"]
        self.objects = {}  # name -> latest object (camelCase dict, as the API sends it)
        self.seen = {}  # name -> (ready_after, seen_at)
        self.timed_out_pending = None  # pending objects with their events, on timeout
        self.check_mode = check_mode
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + self.timeout
        self.resource_version = None
        self.relists = 0
        self.reconnects = 0
        self.events_seen = 0
        self.last_stream_error = ""
        self.last_api_error = ""  # the last transient error retried

    # -- what a subclass provides -------------------------------------------------
    def wanted(self):
        """Names of the objects that must become ready."""
        raise NotImplementedError

    def ready(self, name):
        raise NotImplementedError

    def problems(self):
        """Reasons the wait cannot succeed, by object name ('' for the selector)."""
        raise NotImplementedError

    def timeout_message(self):
        raise NotImplementedError

    def ready_fields(self):
        """The subclass's keys of result(), e.g. the ready objects by name."""
        raise NotImplementedError

    def transient(self, exc):
        """Whether a failed list or watch request is worth retrying until the deadline."""
        return False

    def where(self):
        """Where the objects are, for messages."""
        return f"in namespace {self.namespace}" if self.namespaced else "in the cluster"

    # -- progress and result ---------------------------------------------------------
    def after_change(self):
        for name in self.wanted():
            if self.ready(name):
                self.seen.setdefault(name, (self.elapsed(), now_iso()))
            else:
                self.seen.pop(name, None)  # ready once, then changed again
        problems = self.problems()
        if problems and not self.check_mode:
            raise WaitFailure("; ".join(problems.values()))

    def done(self):
        wanted = self.wanted()
        return bool(wanted) and all(self.ready(name) for name in wanted)

    def result(self):
        return {
            "changed": False,
            **self.ready_fields(),
            "elapsed": self.elapsed(),
            "relists": self.relists,
            "reconnects": self.reconnects,
        }

    # -- the objects -------------------------------------------------------------------
    def on_list(self, items):
        names = set(self.names or [])
        self.objects = {
            item["metadata"]["name"]: item
            for item in items
            if not names or item["metadata"]["name"] in names
        }
        self.after_change()

    def on_event(self, kind, obj):
        name = (obj.get("metadata") or {}).get("name")
        if self.names and name not in self.names:
            return
        if kind == "DELETED":
            self.objects.pop(name, None)
            self.seen.pop(name, None)
            if self.names:
                raise WaitFailure(f"{self.kind} {name!r} {self.where()} was deleted while waiting")
        else:
            self.objects[name] = obj
        self.after_change()

    # -- the list and the watch ------------------------------------------------------
    def elapsed(self):
        return round(self.clock() - self.started, 3)

    def _selector_args(self):
        return {"label_selector": self.selector} if self.selector else {}

    def _scope_args(self):
        """The positional arguments of resources.list: the namespace, if any."""
        return (self.namespace,) if self.namespaced else ()

    def _remaining(self):
        return self.deadline - self.clock()

    def retrying(self, call):
        """call(), again after a short backoff while it fails transiently.

        Raises WaitFailure(timeout_message()) when the deadline passes first, and
        whatever call() raised when that is not transient.
        """
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if not self.transient(exc):
                    raise
                cause = exc.__cause__ if isinstance(exc, TaskFailure) and exc.__cause__ else exc
                self.last_api_error = describe_api_error(cause)
                if self._remaining() <= 0:
                    raise WaitFailure(self.timeout_message()) from exc
                attempt += 1
                time.sleep(min(0.1 * 2**attempt, 2.0, max(self._remaining(), 0)))

    def _list_once(self):
        remaining = max(self._remaining(), 1.0)
        return self.resources.list(
            *self._scope_args(),
            _request_timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
            **self._selector_args(),
        )

    def relist(self):
        self.relists += 1
        try:
            listing = self.retrying(self._list_once)
        except (ApiException, *STREAM_ERRORS) as exc:
            raise WaitFailure(
                f"Could not list {self.plural} {self.where()}: {describe_api_error(exc)}"
            ) from exc
        self.resource_version = (listing.get("metadata") or {}).get("resourceVersion")
        self.on_list(listing.get("items") or [])

    def apply(self, event):
        kind = event.get("type")
        # raw_object: the JSON as sent (Watch's deserialize=False path breaks on
        # ERROR events in kubernetes 37, so we take the raw copy it keeps).
        obj = event.get("raw_object") or {}
        metadata = obj.get("metadata") or {}
        if metadata.get("resourceVersion"):
            self.resource_version = metadata["resourceVersion"]
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK: only the resourceVersion matters
        self.events_seen += 1
        self.on_event(kind, obj)

    def round_seconds(self, remaining):
        """How long the next watch request may last (a subclass may cut it short)."""
        return remaining

    def after_round(self):
        """Called after each watch request that left the wait undone (a subclass hook)."""

    def _watch_once(self):
        """One watch request from the last resourceVersion, until done or it ends.

        Returns whether the request lasted as long as it was asked to (the server
        ended it at its timeout), as opposed to ending or dropping early.
        """
        remaining = max(self.round_seconds(self._remaining()), 0.05)
        started = self.clock()
        stream = watch.Watch().stream(
            self.resources.list,
            *self._scope_args(),
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            # The server ends the watch at the deadline; the read timeout ends a
            # stalled connection then too.
            timeout_seconds=max(1, math.ceil(remaining)),
            _request_timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
            **self._selector_args(),
        )
        try:
            for event in stream:
                self.apply(event)
                if self.done() or self._remaining() <= 0:
                    return True
        finally:
            stream.close()
        return self.clock() - started >= remaining

    def wait(self):
        """List, then watch until done(); raises WaitFailure on error or timeout."""
        self.relist()
        if self.check_mode:
            return
        quiet_rounds = 0  # consecutive watches that ended or broke without an event
        while not self.done():
            if self._remaining() <= 0:
                raise WaitFailure(self.timeout_message())
            events_before = self.events_seen
            full_round = False
            try:
                full_round = self._watch_once()
            except ApiException as exc:
                if exc.status == HTTPStatus.GONE:
                    self.relist()  # 410 Gone: our resourceVersion is too old
                    continue
                if not self.transient(exc):
                    raise WaitFailure(
                        f"Watching {self.plural} {self.where()} failed: {describe_api_error(exc)}"
                    ) from exc
                self.last_stream_error = describe_api_error(exc)  # retried as a dropped stream
            except STREAM_ERRORS as exc:
                # A read timeout at the deadline is the deadline, not news.
                if self._remaining() > 0:
                    self.last_stream_error = f"{type(exc).__name__}: {exc}"
            if self.done():
                return
            self.after_round()
            news = self.events_seen > events_before or full_round
            quiet_rounds = 0 if news else quiet_rounds + 1
            # Reconnect at once after a drop; back off only when watches keep ending
            # without news (API server down or restarting), never past the deadline.
            if quiet_rounds > 1:
                time.sleep(min(0.1 * 2**quiet_rounds, 2.0, max(self._remaining(), 0)))
            self.reconnects += 1

    def stream_error_note(self):
        return f" Last watch error: {self.last_stream_error}." if self.last_stream_error else ""
