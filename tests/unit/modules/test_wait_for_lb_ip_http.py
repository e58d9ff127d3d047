"""wait_for_lb_ip end to end over real HTTP: kubernetes.core's client set-up,
the dynamic client by path, urllib3 and kubernetes.watch.Watch against a small scripted API server
on 127.0.0.1 (discovery, service list, chunked watch streams, events).

It checks what the unit tests with FakeCore cannot: the real request arguments
are accepted, a stream cut mid-chunk and a 410 ERROR event are survived, and the
module returns promptly once the address arrives.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from ansible_collections.dask_gke.core.plugins.module_utils import k8s_watch
from ansible_collections.dask_gke.core.plugins.modules import wait_for_lb_ip
from fake_watch import gone, k8s_event
from kube_lists import object_list

NS = "dask"


def service(name, rv, ip=None):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv)},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "tcp-comm", "port": 8786, "protocol": "TCP", "targetPort": 8786}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]} if ip else {}},
    }


service_list = functools.partial(object_list, "ServiceList")


class Script:
    """What the API server answers: lists in order, one step list per watch."""

    def __init__(self, lists, watches, events=()):
        self.lists = list(lists)
        self.watches = list(watches)
        self.events = list(events)
        self.requests = []
        self.stop = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script = None

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, body):
        data = (json.dumps(body) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.script.requests.append((url.path, query))
        fixed = {
            "/version": {"major": "1", "minor": "36", "gitVersion": "v1.36.3"},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
            f"/api/v1/namespaces/{NS}/events": {"kind": "EventList", "items": self.script.events},
        }
        if url.path in fixed:
            self._json(fixed[url.path])
        elif url.path != f"/api/v1/namespaces/{NS}/services":
            self.send_error(404)
        elif query.get("watch") != "true":
            self._json(self.script.lists.pop(0))
        else:
            self._watch(int(query["timeoutSeconds"]))

    def _watch(self, timeout_seconds):
        steps = self.script.watches.pop(0) if self.script.watches else []
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for step in steps:
            if step == "cut":  # half a chunk, then the connection goes away
                self.wfile.write(b'40\r\n{"type": "MODIF')
                self.wfile.flush()
                self.close_connection = True
                return
            if isinstance(step, float):
                time.sleep(step)
            else:
                self._chunk(step)
        # Like the API server: hold the stream open until timeoutSeconds.
        self.script.stop.wait(timeout_seconds)
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def api_server(monkeypatch, tmp_path):
    servers = []
    # kubernetes.core caches discovery under the temp dir: keep it in tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(k8s_watch, "CONNECT_TIMEOUT", 2.0)

    def start(script):
        handler = type("ScriptedHandler", (Handler,), {"script": script})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, script))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, script in servers:
        script.stop.set()
        server.shutdown()
        server.server_close()


def module_args(host, **extra):
    args = {
        "host": host,
        "api_key": "sandbox-token",
        "namespace": NS,
        "names": ["dask-scheduler"],
        "timeout": 10,
    }
    args.update(extra)
    return args


def test_ip_assigned_while_watching_returns_promptly(run_module, api_server):
    script = Script(
        lists=[service_list(100, service("dask-scheduler", 90))],
        watches=[
            [0.5, {"type": "MODIFIED", "object": service("dask-scheduler", 101, "127.0.0.10")}]
        ],
    )
    host = api_server(script)
    started = time.monotonic()
    outcome, result, _ = run_module(wait_for_lb_ip.main, module_args(host))
    took = time.monotonic() - started
    assert outcome == "exit", result
    assert result["services"]["dask-scheduler"]["ip"] == "127.0.0.10"
    assert 0.5 <= result["services"]["dask-scheduler"]["ready_after"] < 1.5
    assert took < 2.0
    watches = [q for path, q in script.requests if q.get("watch") == "true"]
    assert watches[0]["resourceVersion"] == "100"
    assert watches[0]["allowWatchBookmarks"] == "true"
    assert int(watches[0]["timeoutSeconds"]) <= 10
    assert ("/version", {}) in script.requests  # kubernetes.core's client set-up ran


def test_cut_stream_and_410_are_survived(run_module, api_server):
    stale = gone(120, 300)
    script = Script(
        lists=[
            service_list(100, service("dask-scheduler", 90)),
            service_list(300, service("dask-scheduler", 290)),
        ],
        watches=[
            [{"type": "MODIFIED", "object": service("dask-scheduler", 120)}, "cut"],
            [stale],
            [0.2, {"type": "MODIFIED", "object": service("dask-scheduler", 301, "127.0.0.10")}],
        ],
    )
    host = api_server(script)
    outcome, result, _ = run_module(wait_for_lb_ip.main, module_args(host))
    assert outcome == "exit", result
    assert result["services"]["dask-scheduler"]["ip"] == "127.0.0.10"
    watch_versions = [q["resourceVersion"] for _, q in script.requests if q.get("watch")]
    assert watch_versions == ["100", "120", "300"]
    assert result["relists"] == 2
    assert result["reconnects"] == 1
    assert result["elapsed"] < 3


def test_timeout_over_http_reports_events(run_module, api_server):
    script = Script(
        lists=[service_list(100, service("dask-scheduler", 90))],
        watches=[],
        events=[
            k8s_event(
                "Service",
                "dask-scheduler",
                "SyncLoadBalancerFailed",
                "Error syncing load balancer: no address available",
                count=2,
                metadata={"name": "dask-scheduler.1", "namespace": NS},
            )
        ],
    )
    host = api_server(script)
    outcome, result, _ = run_module(wait_for_lb_ip.main, module_args(host, timeout=2))
    assert outcome == "fail"
    assert "Timed out after 2s" in result["msg"]
    assert "SyncLoadBalancerFailed: Error syncing load balancer" in result["msg"]
    assert 2.0 <= result["elapsed"] < 3.5
