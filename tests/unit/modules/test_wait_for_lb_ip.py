"""wait_for_lb_ip against a fake API server (fake_watch.FakeListApi for the services)."""

from __future__ import annotations

import functools

import pytest
from ansible_collections.dask_gke.core.plugins.module_utils.k8s_watch import WaitFailure
from ansible_collections.dask_gke.core.plugins.modules import wait_for_lb_ip
from fake_watch import (
    GONE,
    Advance,
    FakeClock,
    FakeListApi,
    FakeStream,
    event,
    install_fake_cluster,
    k8s_event,
)
from kube_lists import object_list
from urllib3.exceptions import ProtocolError, ReadTimeoutError

NS = "dask"


def service(name, rv, *, svc_type="LoadBalancer", ip=None, hostname=None, labels=None):
    ingress = []
    if ip or hostname:
        ingress.append({key: value for key, value in (("ip", ip), ("hostname", hostname)) if value})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": str(rv),
            "labels": labels or {"app": "dask"},
        },
        "spec": {
            "type": svc_type,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8888}],
        },
        "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
    }


service_list = functools.partial(object_list, "ServiceList")


def both_pending():
    """The release's two LoadBalancer Services at resource version 100, no address yet."""
    return service_list(100, service("dask-scheduler", 90), service("dask-jupyter", 91))


def ip_assigned(name, rv, ip):
    """The watch event of a Service that got its load balancer address."""
    return event("MODIFIED", service(name, rv, ip=ip))


FakeCore = FakeListApi  # the services, and core.events_api their Events


def both_pending_then(*watches):
    """A FakeCore listing both Services pending, then answering the watch scripts in turn."""
    return FakeCore(FakeClock(), [both_pending()], watches=watches)


def params(**overrides):
    base = {
        "namespace": NS,
        "names": ["dask-scheduler", "dask-jupyter"],
        "label_selector": None,
        "accept_hostname": True,
        "timeout": 60,
    }
    base.update(overrides)
    return base


def waiter_for(core, check_mode=False, **overrides):
    return wait_for_lb_ip.LoadBalancerWaiter(
        core, core.events_api, params(**overrides), check_mode=check_mode, clock=core.clock
    )


def test_immediate_ip_returns_without_watching():
    clock = FakeClock()
    core = FakeCore(
        clock,
        [
            service_list(
                100,
                service("dask-scheduler", 90, ip="127.0.0.10"),
                service("dask-jupyter", 91, ip="127.0.0.11"),
                service("unrelated", 92, svc_type="ClusterIP"),
            )
        ],
    )
    waiter = waiter_for(core)
    waiter.wait()
    result = waiter.result()
    assert core.watch_calls() == []
    assert result["services"]["dask-scheduler"]["ip"] == "127.0.0.10"
    assert result["services"]["dask-jupyter"]["ip"] == "127.0.0.11"
    assert result["services"]["dask-jupyter"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "target_port": 8888, "node_port": None}
    ]
    assert result["services"]["dask-jupyter"]["ready_after"] == 0.0
    assert result["changed"] is False
    assert waiter.pending() == []


def test_ip_arriving_later_is_seen_from_the_watch():
    core = both_pending_then(
        [
            Advance(1.5),
            ip_assigned("dask-scheduler", 101, "127.0.0.10"),
            Advance(1.0),
            ip_assigned("dask-jupyter", 102, "127.0.0.11"),
            ip_assigned("dask-jupyter", 103, "127.0.0.99"),  # not read
        ]
    )
    waiter = waiter_for(core)
    waiter.wait()
    result = waiter.result()
    watch = core.watch_calls()
    assert len(watch) == 1
    assert watch[0]["resource_version"] == "100"
    assert watch[0]["allow_watch_bookmarks"] is True
    assert result["services"]["dask-scheduler"]["ready_after"] == 1.5
    assert result["services"]["dask-jupyter"]["ready_after"] == 2.5
    assert result["services"]["dask-jupyter"]["ip"] == "127.0.0.11"
    assert result["elapsed"] == 2.5


def test_watch_requests_are_bounded_by_the_remaining_time():
    core = both_pending_then(
        [Advance(20)],
        [
            ip_assigned("dask-scheduler", 101, "127.0.0.10"),
            ip_assigned("dask-jupyter", 102, "127.0.0.11"),
        ],
    )
    waiter = waiter_for(core, timeout=60)
    waiter.wait()
    first, second = core.watch_calls()
    assert first["timeout_seconds"] == 60
    assert first["_request_timeout"][1] == 60
    assert second["timeout_seconds"] == 40
    assert second["_request_timeout"][1] == 40
    assert waiter.reconnects == 1


def test_410_gone_lists_again_and_watches_from_the_new_version():
    clock = FakeClock()
    core = FakeCore(
        clock,
        [
            both_pending(),
            service_list(
                250, service("dask-scheduler", 240, ip="127.0.0.10"), service("dask-jupyter", 91)
            ),
        ],
        watches=[
            [GONE],
            [ip_assigned("dask-jupyter", 251, "127.0.0.11")],
        ],
    )
    waiter = waiter_for(core)
    waiter.wait()
    assert [kind for kind, _ in core.calls] == ["list", "watch", "list", "watch"]
    assert [w["resource_version"] for w in core.watch_calls()] == ["100", "250"]
    assert waiter.relists == 2
    assert set(waiter.result()["services"]) == {"dask-scheduler", "dask-jupyter"}


def test_410_gone_relist_can_finish_the_wait():
    clock = FakeClock()
    core = FakeCore(
        clock,
        [
            both_pending(),
            service_list(
                250,
                service("dask-scheduler", 240, ip="127.0.0.10"),
                service("dask-jupyter", 241, ip="127.0.0.11"),
            ),
        ],
        watches=[[GONE]],
    )
    waiter = waiter_for(core)
    waiter.wait()
    assert [kind for kind, _ in core.calls] == ["list", "watch", "list"]


@pytest.mark.parametrize(
    "drop",
    [
        ProtocolError("Connection broken: IncompleteRead(0 bytes read)"),
        ReadTimeoutError(None, "/api/v1/namespaces/dask/services", "Read timed out."),
        ConnectionResetError(104, "Connection reset by peer"),
        None,  # the server simply ends the stream early
    ],
)
def test_dropped_stream_reconnects_from_the_last_resource_version(drop):
    first = [ip_assigned("dask-scheduler", 120, "127.0.0.10")]
    if drop is not None:
        first.append(drop)
    core = both_pending_then(first, [ip_assigned("dask-jupyter", 121, "127.0.0.11")])
    waiter = waiter_for(core)
    waiter.wait()
    assert [w["resource_version"] for w in core.watch_calls()] == ["100", "120"]
    assert waiter.relists == 1
    assert waiter.reconnects == 1
    assert waiter.result()["services"]["dask-jupyter"]["ip"] == "127.0.0.11"


def test_bookmark_moves_the_resource_version():
    clock = FakeClock()
    bookmark = {
        "type": "BOOKMARK",
        "object": {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": "180"}},
    }
    core = FakeCore(
        clock,
        [
            service_list(
                100, service("dask-scheduler", 90, ip="127.0.0.10"), service("dask-jupyter", 91)
            )
        ],
        watches=[[bookmark], [ip_assigned("dask-jupyter", 190, "127.0.0.11")]],
    )
    waiter_for(core).wait()
    assert [w["resource_version"] for w in core.watch_calls()] == ["100", "180"]


def test_missing_named_service_fails_at_once():
    clock = FakeClock()
    core = FakeCore(clock, [service_list(100, service("dask-scheduler", 90))])
    waiter = waiter_for(core)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    assert "'dask-jupyter' does not exist in namespace dask" in str(failure.value)
    assert core.watch_calls() == []


def test_service_of_another_type_fails_at_once():
    clock = FakeClock()
    listing = service_list(
        100, service("dask-scheduler", 90), service("dask-jupyter", 91, svc_type="ClusterIP")
    )
    core = FakeCore(clock, [listing])
    with pytest.raises(WaitFailure) as failure:
        waiter_for(core).wait()
    assert "'dask-jupyter' in namespace dask is of type ClusterIP, not LoadBalancer" in str(
        failure.value
    )
    assert core.watch_calls() == []


def test_named_service_deleted_while_waiting_fails():
    core = both_pending_then([event("DELETED", service("dask-jupyter", 130))])
    with pytest.raises(WaitFailure, match=r"'dask-jupyter' .* was deleted"):
        waiter_for(core).wait()


def test_timeout_lists_pending_services_with_events_warnings_first():
    clock = FakeClock()
    quota = "failed to ensure load balancer: quota 'FORWARDING_RULES' exceeded"
    events = [
        k8s_event(
            "Service",
            "dask-jupyter",
            "EnsuringLoadBalancer",
            "Ensuring load balancer",
            level="Normal",
            count=4,
            at="14:05:00",
        ),
        k8s_event(
            "Service",
            "dask-jupyter",
            "SyncLoadBalancerFailed",
            f"Error syncing load balancer: {quota}",
            count=3,
        ),
    ]
    core = FakeCore(
        clock,
        [
            service_list(
                100, service("dask-scheduler", 90, ip="127.0.0.10"), service("dask-jupyter", 91)
            )
        ],
        events=events,
    )
    waiter = waiter_for(core, timeout=30)
    with pytest.raises(WaitFailure) as failure:
        waiter.wait()
    message = str(failure.value)
    assert message.startswith("Timed out after 30s waiting for a load balancer IP or hostname")
    assert "dask-jupyter (no load balancer ingress yet; events: Warning SyncLoadBalancerFailed" in (
        message
    )
    assert message.index("SyncLoadBalancerFailed") < message.index("EnsuringLoadBalancer")
    assert "dask-scheduler" not in message
    assert clock.now - 1000.0 == pytest.approx(30)
    pending = waiter.timed_out_pending
    assert [item["name"] for item in pending] == ["dask-jupyter"]
    assert [e["reason"] for e in pending[0]["events"]] == [
        "SyncLoadBalancerFailed",
        "EnsuringLoadBalancer",
    ]
    assert waiter.result()["services"]["dask-scheduler"]["ip"] == "127.0.0.10"


def test_hostname_counts_only_when_accepted():
    clock = FakeClock()
    lb_name = "a1b2c3-1234567890.us-east-1.elb.amazonaws.com"
    listing = service_list(100, service("dask-scheduler", 90, hostname=lb_name))
    accepted = waiter_for(FakeCore(clock, [listing]), names=["dask-scheduler"])
    accepted.wait()
    assert accepted.result()["services"]["dask-scheduler"] == {
        "ip": None,
        "hostname": lb_name,
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "target_port": 8888, "node_port": None}
        ],
        "ready_after": 0.0,
        "seen_at": accepted.seen["dask-scheduler"][1],
    }
    refused = waiter_for(
        FakeCore(clock, [listing]), names=["dask-scheduler"], accept_hostname=False, timeout=5
    )
    with pytest.raises(WaitFailure, match="waiting for a load balancer IP in"):
        refused.wait()


def test_label_selector_waits_for_matching_load_balancers_and_ignores_others():
    clock = FakeClock()
    core = FakeCore(
        clock,
        [
            service_list(
                100,
                service("dask-scheduler", 90),
                service("dask-headless", 91, svc_type="ClusterIP"),
            )
        ],
        watches=[
            [
                event("ADDED", service("dask-jupyter", 110)),
                ip_assigned("dask-scheduler", 111, "127.0.0.10"),
                ip_assigned("dask-jupyter", 112, "127.0.0.11"),
            ]
        ],
    )
    waiter = waiter_for(core, names=None, label_selector="app=dask")
    waiter.wait()
    result = waiter.result()
    assert set(result["services"]) == {"dask-scheduler", "dask-jupyter"}
    assert result["ignored"] == ["dask-headless"]
    assert all(kwargs["label_selector"] == "app=dask" for _, kwargs in core.calls)


def test_label_selector_without_load_balancers_fails_at_once():
    clock = FakeClock()
    core = FakeCore(clock, [service_list(100, service("dask-headless", 91, svc_type="ClusterIP"))])
    with pytest.raises(WaitFailure, match="no service of type LoadBalancer"):
        waiter_for(core, names=None, label_selector="app=dask").wait()
    assert core.watch_calls() == []


def test_check_mode_reports_without_waiting_or_failing():
    clock = FakeClock()
    core = FakeCore(
        clock,
        [
            service_list(
                100, service("dask-scheduler", 90, ip="127.0.0.10"), service("dask-jupyter", 91)
            )
        ],
    )
    waiter = waiter_for(core, check_mode=True, names=["dask-scheduler", "dask-jupyter", "gone"])
    waiter.wait()
    assert core.watch_calls() == []
    assert list(waiter.result()["services"]) == ["dask-scheduler"]
    pending = waiter.pending()
    assert [(p["name"], p["reason"].split(";")[0]) for p in pending] == [
        ("gone", "service 'gone' does not exist in namespace dask"),
        ("dask-jupyter", "no load balancer ingress yet"),
    ]


# -- through main(), with the kubernetes.core client set-up replaced --------------


@pytest.fixture
def fake_cluster(monkeypatch):
    def install(core):
        return install_fake_cluster(monkeypatch, wait_for_lb_ip, ("v1", "services"), core)

    return install


def test_module_returns_services_and_elapsed(run_module, fake_cluster, monkeypatch):
    # main() on the fake clock: the jupyter address comes 2.5 s into the watch.
    clock = FakeClock()
    monkeypatch.setattr(
        wait_for_lb_ip,
        "LoadBalancerWaiter",
        functools.partial(wait_for_lb_ip.LoadBalancerWaiter, clock=clock),
    )
    listing = service_list(
        100, service("dask-scheduler", 90, ip="127.0.0.10"), service("dask-jupyter", 91)
    )
    later = [Advance(2.5), ip_assigned("dask-jupyter", 101, "127.0.0.11")]
    fake_cluster(FakeCore(clock, [listing], watches=[later]))
    outcome, result, _ = run_module(
        wait_for_lb_ip.main, {"namespace": NS, "names": ["dask-scheduler", "dask-jupyter"]}
    )
    assert outcome == "exit"
    assert result["changed"] is False
    assert result["pending"] == []
    assert result["services"]["dask-jupyter"]["ip"] == "127.0.0.11"
    assert result["services"]["dask-jupyter"]["ready_after"] == 2.5
    assert result["services"]["dask-scheduler"]["ready_after"] == 0.0
    assert result["elapsed"] == 2.5
    assert result["relists"] == 1


def test_module_check_mode_does_not_fail_on_missing_services(run_module, fake_cluster):
    core = fake_cluster(FakeCore(FakeClock(), [service_list(100)]))
    outcome, result, warnings = run_module(
        wait_for_lb_ip.main, {"namespace": NS, "names": ["dask-scheduler"]}, check_mode=True
    )
    assert outcome == "exit"
    assert warnings == [result["pending"][0]["reason"]]
    assert "'dask-scheduler' does not exist" in warnings[0]
    assert result["services"] == {}
    assert result["pending"][0]["name"] == "dask-scheduler"
    assert core.watch_calls() == []


def test_module_fails_on_missing_service_with_pending(run_module, fake_cluster):
    fake_cluster(FakeCore(FakeClock(), [service_list(100, service("dask-scheduler", 90))]))
    outcome, result, _ = run_module(
        wait_for_lb_ip.main, {"namespace": NS, "names": ["dask-scheduler", "dask-jupyter"]}
    )
    assert outcome == "fail"
    assert "'dask-jupyter' does not exist" in result["msg"]
    assert [p["name"] for p in result["pending"]] == ["dask-jupyter", "dask-scheduler"]


def test_module_timeout_returns_events_in_pending(run_module, fake_cluster, monkeypatch):
    # A real one-second wait: the fake server holds the watch for timeout_seconds.
    class RealClockStream(FakeStream):
        def stream(self, amt=None, decode_content=False):
            wait_for_lb_ip.time.sleep(0.2)
            yield from ()

    core = FakeCore(
        FakeClock(),
        [service_list(100, service("dask-scheduler", 90))],
        events=[k8s_event("Service", "dask-scheduler", "SyncLoadBalancerFailed", "no IP left")],
    )
    monkeypatch.setattr(
        core,
        "list",
        lambda namespace, **kw: (
            RealClockStream([], None, kw["timeout_seconds"])
            if kw.get("watch")
            else service_list(100, service("dask-scheduler", 90))
        ),
    )
    fake_cluster(core)
    outcome, result, _ = run_module(
        wait_for_lb_ip.main, {"namespace": NS, "names": ["dask-scheduler"], "timeout": 1}
    )
    assert outcome == "fail"
    assert result["msg"].startswith("Timed out after 1s")
    assert result["pending"][0]["events"][0]["reason"] == "SyncLoadBalancerFailed"
    assert 1.0 <= result["elapsed"] < 2.0
    assert result["reconnects"] >= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"names": ["a"], "timeout": 0}, "timeout=0 must be a positive number"),
        ({"names": ["a"], "label_selector": "app=dask"}, "mutually exclusive"),
        ({}, "one of the following is required"),
    ],
)
def test_module_argument_errors(run_module, fake_cluster, args, message):
    fake_cluster(FakeCore(FakeClock(), []))
    outcome, result, _ = run_module(wait_for_lb_ip.main, args)
    assert outcome == "fail"
    assert message in result["msg"]


def test_watches_ending_without_news_back_off_instead_of_spinning(monkeypatch):
    clock = FakeClock()
    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(round(seconds, 3))
        clock.advance(seconds)

    monkeypatch.setattr(wait_for_lb_ip.time, "sleep", fake_sleep)
    ready = [ip_assigned("dask-scheduler", 101, "127.0.0.10")]
    core = FakeCore(
        clock,
        [service_list(100, service("dask-scheduler", 90))],
        watches=[[], [], [], [], [ProtocolError("Connection refused")], ready],
    )
    waiter = waiter_for(core, names=["dask-scheduler"])
    waiter.wait()
    # The first quiet end reconnects at once; then 0.4, 0.8, 1.6 s, capped at 2 s.
    assert sleeps == [0.4, 0.8, 1.6, 2.0]
    assert waiter.reconnects == 5
    assert waiter.last_stream_error == "ProtocolError: Connection refused"
    assert waiter.result()["services"]["dask-scheduler"]["ready_after"] == pytest.approx(4.8)
