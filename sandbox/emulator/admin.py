"""Admin HTTP API of the sandbox (SANDBOX_ADMIN_URL) and the chart repository server.

Admin calls (docs/contracts.md): GET /healthz, GET /state, GET|DELETE /requests
(`?host=` picks another API's calls, `?host=*` every call), GET|PUT|DELETE /faults,
POST /tokens/expire (ends every access token issued so far, as time would),
POST /images (build and import a Dask version's images into the real nodes), and
POST /shutdown, which deletes every backend cluster and then stops the daemon (used
by `sandbox.cli down`).
"""

import functools
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sandbox.emulator.faults import FaultSettingsError
from sandbox.emulator.server import GKE_HOST

log = logging.getLogger("sandbox.admin")

DEFAULT_LB_DELAY_MS = 500  # LoadBalancer ingress delay when no fault sets lb_delay_ms
DEFAULT_LB_CLEANUP_DELAY_MS = 500  # listener gone -> finalizer removed, when no fault sets it


class LoadBalancerSwitch:
    """Passes the LoadBalancer fault settings to the backend, only when they change."""

    def __init__(self, backend):
        self._backend = backend
        self._lock = threading.Lock()
        self._applied = (True, DEFAULT_LB_DELAY_MS, DEFAULT_LB_CLEANUP_DELAY_MS)

    def apply(self, settings: dict) -> None:
        wanted = (
            settings.get("load_balancer", {}).get("assign", True),
            settings.get("lb_delay_ms", DEFAULT_LB_DELAY_MS),
            settings.get("lb_cleanup_delay_ms", DEFAULT_LB_CLEANUP_DELAY_MS),
        )
        with self._lock:
            if wanted != self._applied:
                self._backend.set_load_balancer(*wanted)
                self._applied = wanted


class AdminApp:
    def __init__(self, api, backend, stop):
        """`api`: the server.GkeApp whose state this API shows and changes."""
        self.service = api.service
        self.faults = api.faults
        self.request_log = api.request_log
        self.tokens = api.tokens
        self.backend = backend
        self.load_balancer = LoadBalancerSwitch(backend)
        self.stop = stop  # called (on another thread) after POST /shutdown answered

    def state(self) -> dict:
        """The emulator's state, plus the data plane's (forwarding rules, real nodes)."""
        data_plane = getattr(self.backend, "data_plane", None)
        return {**self.service.snapshot(), **(data_plane.snapshot() if data_plane else {})}

    def shutdown_clusters(self) -> list[str]:
        """Delete every backend cluster; return their ids."""
        deleted = []
        for cluster_id in self.backend.list_clusters():
            log.info("shutdown: deleting cluster %s", cluster_id)
            self.backend.delete_cluster(cluster_id)
            deleted.append(cluster_id)
        return deleted


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300

    def log_message(self, format, *args):
        log.debug("%s " + format, self.client_address[0], *args)

    def do_GET(self):
        app: AdminApp = self.server.app
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send(200, {"status": "ok"})
        elif path == "/state":
            self._send(200, app.state())
        elif path == "/requests":
            host = parse_qs(urlsplit(self.path).query).get("host", [GKE_HOST])[0]
            self._send(200, app.request_log.entries(None if host == "*" else host))
        elif path == "/faults":
            self._send(200, app.faults.get())
        else:
            self._send(404, {"error": f"unknown admin path {path}"})

    def do_DELETE(self):
        app: AdminApp = self.server.app
        path = urlsplit(self.path).path
        if path == "/requests":
            app.request_log.clear()
            self._send(200, [])
        elif path == "/faults":
            app.faults.clear()
            app.load_balancer.apply({})
            self._send(200, {})
        else:
            self._send(404, {"error": f"unknown admin path {path}"})

    def do_PUT(self):
        app: AdminApp = self.server.app
        if urlsplit(self.path).path == "/real-node":
            self._put_real_node(app)
            return
        if urlsplit(self.path).path != "/faults":
            self._send(404, {"error": f"unknown admin path {self.path}"})
            return
        try:
            settings = json.loads(self._body() or b"null")
            applied = app.faults.replace(settings)
        except (ValueError, FaultSettingsError) as error:
            self._send(400, {"error": str(error)})
            return
        app.load_balancer.apply(applied)
        app.service.start_background_operations()
        self._send(200, applied)

    def do_POST(self):
        app: AdminApp = self.server.app
        path = urlsplit(self.path).path
        if path == "/images":
            self._post_images(app)
            return
        if path == "/tokens/expire":
            self._body()
            self._send(200, {"expired": app.tokens.expire_all()})
            return
        if path != "/shutdown":
            self._send(404, {"error": f"unknown admin path {self.path}"})
            return
        self._body()
        try:
            deleted = app.shutdown_clusters()
        except Exception as error:  # report any backend failure to the CLI
            log.exception("shutdown: deleting clusters failed")
            self._send(500, {"error": f"deleting clusters failed: {error}"})
            return
        self._send(200, {"deleted": deleted})
        threading.Thread(target=app.stop, name="shutdown", daemon=True).start()

    def _put_real_node(self, app: AdminApp) -> None:
        """{"enabled": false}: clusters created from now on get fake nodes only (scale tests)."""
        data_plane = getattr(app.backend, "data_plane", None)
        enabled = self._json_field("enabled")
        if not isinstance(enabled, bool) or data_plane is None:
            usage = 'PUT /real-node wants {"enabled": true|false} (kwok backend)'
            self._send(400, {"error": usage})
            return
        try:
            data_plane.enable_real_nodes(enabled)
        except Exception as error:  # the machine cannot host one: say why
            self._send(409, {"error": str(error)})
            return
        self._send(200, {"realNodeDisabled": data_plane.real_node_reason})

    def _post_images(self, app: AdminApp) -> None:
        """{"dask_version": "2026.8.0"}: build its images if needed, import into every node."""
        data_plane = getattr(app.backend, "data_plane", None)
        version = self._json_field("dask_version")
        if not isinstance(version, str) or not version:
            self._send(400, {"error": 'POST /images wants {"dask_version": "<version>"}'})
            return
        if data_plane is None:
            self._send(400, {"error": "this backend has no real nodes"})
            return
        try:
            data_plane.add_dask_version(version)
        except Exception as error:  # build or import failure: the caller needs the reason
            log.exception("POST /images %s failed", version)
            self._send(500, {"error": str(error)})
            return
        self._send(200, {"dask_versions": data_plane.dask_versions})

    def _json_field(self, name: str):
        """One field of the JSON object in the request body (None when absent or not JSON)."""
        try:
            return json.loads(self._body() or b"{}").get(name)
        except (ValueError, AttributeError):
            return None

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body) -> None:
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def make_admin_server(app: AdminApp, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), AdminHandler)
    server.daemon_threads = True
    server.app = app
    return server


class ChartRepoHandler(SimpleHTTPRequestHandler):
    """Read-only files of <sandbox>/charts: GET/HEAD only, no listings.

    SimpleHTTPRequestHandler.translate_path drops '..' segments, so no path
    leaves the directory.
    """

    def list_directory(self, path):
        self.send_error(404, "Not found")

    def log_message(self, format, *args):
        log.debug("chart repo %s " + format, self.client_address[0], *args)


def make_chart_server(charts_dir: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(ChartRepoHandler, directory=str(charts_dir))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server
