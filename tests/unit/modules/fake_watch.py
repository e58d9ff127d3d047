"""A fake clock and fake watch streams for the waiting modules' unit tests.

FakeListApi stands in for k8s_client.NamespacedResource of the watched kind:
list calls return scripted lists, watch calls return a scripted HTTP stream that
the real kubernetes.watch.Watch reads (line splitting, ERROR events, 410). A
watch whose script runs out behaves like the API server: it holds the stream
until `timeout_seconds` pass (on the fake clock), then ends it. Its `events_api`
and `pods_api` stand in for the NamespacedResources of v1 events and pods.
"""

from __future__ import annotations

import json


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Advance:
    """A watch script step: time passes on the fake clock."""

    def __init__(self, seconds):
        self.seconds = seconds


def event(kind, obj):
    return {"type": kind, "object": obj}


def k8s_event(kind, name, reason, message, *, level="Warning", count=None, at="14:04:00", **extra):
    """A v1 Event about the object kind/name, with the fields the waiters read."""
    item = {
        "type": level,
        "reason": reason,
        "message": message,
        "lastTimestamp": f"2026-11-26T{at}Z",
        "involvedObject": {"kind": kind, "name": name},
        **extra,
    }
    if count is not None:
        item["count"] = count
    return item


def gone(old_version, current_version):
    """The ERROR event of a watch whose resource version the server no longer has (410)."""
    return {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {old_version} ({current_version})",
            "reason": "Expired",
            "code": 410,
        },
    }


GONE = gone(100, 250)


class FakeStream:
    """The urllib3 response a watch request returns (the parts Watch uses)."""

    status = 200

    def __init__(self, steps, clock, timeout_seconds):
        self.steps = steps
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self.closed = False

    def stream(self, amt=None, decode_content=False):
        for step in self.steps:
            if isinstance(step, Advance):
                self.clock.advance(step.seconds)
            elif isinstance(step, BaseException):
                raise step
            else:
                yield (json.dumps(step) + "\n").encode()
        if self.steps is HOLD:
            self.clock.advance(self.timeout_seconds)

    def close(self):
        self.closed = True

    def release_conn(self):
        pass


HOLD = []  # a watch with no events that the server ends at timeout_seconds


class FakeListApi:
    """Scripted lists and watches for one resource in one namespace, plus its Events
    and Pods."""

    def __init__(self, clock, lists, watches=(), events=(), *, pods=(), namespace="dask"):
        self.clock = clock
        self.lists = list(lists)
        self.watches = list(watches)
        self.namespace = namespace
        self.calls = []
        self.events_api = FakeEvents(events, self.calls)
        self.pods_api = FakePods(pods, self.calls)

    def list(self, namespace, **kwargs):
        assert namespace == self.namespace
        self.calls.append(("watch" if kwargs.get("watch") else "list", kwargs))
        if kwargs.get("watch"):
            steps = self.watches.pop(0) if self.watches else HOLD
            return FakeStream(steps, self.clock, kwargs["timeout_seconds"])
        return self.lists.pop(0)

    def watch_calls(self):
        return [kwargs for kind, kwargs in self.calls if kind == "watch"]


class FakeClusterApi(FakeListApi):
    """FakeListApi for a cluster-scoped resource (k8s_client.ClusterResource): no namespace.

    A script entry that is an exception is raised by that list call, and a watch
    script that is one is raised by the watch request, as a failing request would.
    """

    def __init__(self, clock, lists, watches=()):
        super().__init__(clock, lists, watches, namespace=None)

    def list(self, **kwargs):
        if not kwargs.get("watch") and self.lists and isinstance(self.lists[0], BaseException):
            self.calls.append(("list", kwargs))
            raise self.lists.pop(0)
        if kwargs.get("watch") and self.watches and isinstance(self.watches[0], BaseException):
            self.calls.append(("watch", kwargs))
            raise self.watches.pop(0)
        return super().list(None, **kwargs)


class FakeEvents:
    """The Events of the objects, filtered by involvedObject.name as the API server does."""

    def __init__(self, events, calls):
        self.events = list(events)
        self.calls = calls

    def list(self, namespace, field_selector, **kwargs):
        self.calls.append(("events", {"field_selector": field_selector}))
        name = field_selector.split("involvedObject.name=")[1]
        return {"items": [e for e in self.events if e["involvedObject"]["name"] == name]}


class FakePods:
    """The Pods, filtered by label selector and status.phase as the API server does.

    pods: a list of Pods, or a callable returning the list at the time of the call.
    """

    def __init__(self, pods, calls):
        self.pods = pods
        self.calls = calls

    def list(self, namespace, label_selector, field_selector=None, **kwargs):
        self.calls.append(
            ("pods", {"label_selector": label_selector, "field_selector": field_selector})
        )
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(","))
        phase = field_selector.split("status.phase=")[1] if field_selector else None
        pods = self.pods() if callable(self.pods) else self.pods
        items = [
            pod
            for pod in pods
            if wanted.items() <= (pod["metadata"].get("labels") or {}).items()
            and (phase is None or pod["status"].get("phase") == phase)
        ]
        return {"items": items[: kwargs.get("limit") or None]}


def install_fake_cluster(monkeypatch, module, resource, fake):
    """Make module.main() reach `fake` (group_version, plural = resource) and its Events.

    Replaces kubernetes.core's client set-up and k8s_client.NamespacedResource in
    the module under test; the module's Pods are `fake.pods_api`.
    """
    by_path = {resource: fake, ("v1", "events"): fake.events_api, ("v1", "pods"): fake.pods_api}
    monkeypatch.setattr(module, "dynamic_client", lambda _module: "dynamic-client")
    monkeypatch.setattr(
        module,
        "NamespacedResource",
        lambda client, group_version, plural: by_path[group_version, plural],
    )
    return fake
