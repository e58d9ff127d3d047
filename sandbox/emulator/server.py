"""HTTPS handler for container.googleapis.com v1 (clusters, nodePools, operations).

Serves both URL forms: /v1/projects/{p}/locations/{l}/... and the older
/v1/projects/{p}/zones/{z}/... (setSize is `nodePools/{np}:setSize` in the
first, `nodePools/{np}/setSize` in the second). Every call is written to the
request log, never with its token.
"""

import hmac
import json
import logging
import ssl
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from sandbox.emulator.gke import ApiError, GkeService, check_location

log = logging.getLogger("sandbox.gke")

FAULT_ERRORS = {
    429: ApiError(
        429, "RESOURCE_EXHAUSTED", "Sandbox fault injection: quota exceeded, retry later."
    ),
    503: ApiError(
        503, "UNAVAILABLE", "Sandbox fault injection: the service is currently unavailable."
    ),
}
PERMISSION_DENIED = ApiError(403, "PERMISSION_DENIED", "The caller does not have permission")
UNKNOWN_URL = ApiError(404, "NOT_FOUND", "Requested entity was not found.")


class RequestLog:
    """GKE API calls as JSON lines in a file and in memory (GET /requests)."""

    def __init__(self, path: Path | None):
        self._path = path
        self._lock = threading.Lock()
        self._entries: list[dict] = []

    def add(self, method: str, path: str, status: int, fault: str | None) -> None:
        entry = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": method,
            "path": path,
            "status": status,
            "fault": fault,
        }
        with self._lock:
            self._entries.append(entry)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            if self._path is not None:
                self._path.write_text("", encoding="utf-8")


def route(service: GkeService, method: str, path: str, body: dict | None) -> dict:
    """Dispatch one API call to the service; raise ApiError for anything unknown."""
    parts = path.strip("/").split("/")
    if len(parts) < 5 or parts[0] != "v1" or parts[1] != "projects":
        raise UNKNOWN_URL
    if parts[3] not in ("locations", "zones"):
        raise UNKNOWN_URL
    project, location, rest = parts[2], parts[4], parts[5:]
    zones_form = parts[3] == "zones"
    if location != "-":
        check_location(location)
    elif method != "GET" or rest not in (["clusters"], ["operations"]):
        raise UNKNOWN_URL  # "-" (every location) exists only for lists

    # setSize: ".../nodePools/{np}:setSize" (locations) or ".../nodePools/{np}/setSize" (zones)
    if (
        len(rest) == 4
        and rest[2] == "nodePools"
        and not zones_form
        and rest[3].endswith(":setSize")
    ):
        rest = [*rest[:3], rest[3].removesuffix(":setSize"), "setSize"]
    key = (method, len(rest), rest[0] if rest else "")
    cluster = rest[1] if len(rest) > 1 else None
    if rest[:1] == ["operations"]:
        if key == ("GET", 1, "operations"):
            return service.list_operations(project, location)
        if key == ("GET", 2, "operations"):
            return service.get_operation(project, location, rest[1])
        raise UNKNOWN_URL
    if rest[:1] != ["clusters"] or (len(rest) >= 3 and rest[2] != "nodePools"):
        raise UNKNOWN_URL
    handlers = {
        ("GET", 1): lambda: service.list_clusters(project, location),
        ("POST", 1): lambda: service.create_cluster(project, location, body or {}),
        ("GET", 2): lambda: service.get_cluster(project, location, cluster),
        ("DELETE", 2): lambda: service.delete_cluster(project, location, cluster),
        ("GET", 3): lambda: service.list_node_pools(project, location, cluster),
        ("POST", 3): lambda: service.create_node_pool(project, location, cluster, body or {}),
        ("GET", 4): lambda: service.get_node_pool(project, location, cluster, rest[3]),
        ("DELETE", 4): lambda: service.delete_node_pool(project, location, cluster, rest[3]),
    }
    if len(rest) == 5 and rest[4] == "setSize" and method == "POST":
        return service.set_node_pool_size(project, location, cluster, rest[3], body or {})
    if method == "PUT" and len(rest) in (2, 4):
        raise unsupported_update(body)
    handler = handlers.get((method, len(rest)))
    if handler is None:
        raise UNKNOWN_URL
    return handler()


def unsupported_update(body: dict | None) -> ApiError:
    """PUT (clusters.update / nodePools.update) is not emulated; mimic GKE's schema errors."""
    for name in body or {}:
        if name not in (
            "update",
            "name",
            "projectId",
            "zone",
            "clusterId",
            "nodePoolId",
            "nodeVersion",
            "imageType",
        ):
            return ApiError(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.',
            )
    return ApiError(400, "INVALID_ARGUMENT", "The sandbox emulator does not support updates.")


class GkeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    timeout = 300  # idle keep-alive connections close after this many seconds

    def log_message(self, format, *args):
        log.debug("%s " + format, self.client_address[0], *args)

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        fault = None
        try:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = app.faults.take_http_error()
            if code is not None:
                fault = f"http_errors:{code}"
                raise FAULT_ERRORS[code]
            if not self._authorised(app.token):
                raise PERMISSION_DENIED
            body = self._parse_json(raw)
            status, result = 200, route(app.service, self.command, path, body)
            operation = result.get("name") if "operationType" in result else None
            if operation:
                op_fault = app.service.operation_fault(operation)
                if op_fault and self.command != "GET":
                    fault = f"operations:{op_fault}"
        except ApiError as error:
            status, result = error.http_code, error.body()
        except Exception:  # answer 500 like GKE, not a dropped connection
            log.exception("internal error on %s %s", self.command, path)
            status = 500
            result = ApiError(500, "INTERNAL", "Internal error encountered.").body()
        app.request_log.add(self.command, path, status, fault)
        log.info("%s %s %s%s", self.command, path, status, f" fault={fault}" if fault else "")
        self._send(status, result)

    def _authorised(self, token: str) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token)

    @staticmethod
    def _parse_json(raw: bytes) -> dict | None:
        if not raw.strip():
            return None
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise ApiError(
                400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {error}"
            ) from None
        if not isinstance(body, dict):
            raise ApiError(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object."
            )
        return body

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class TlsHttpServer(ThreadingHTTPServer):
    """Does the TLS handshake on the connection's own thread, with a bounded wait."""

    daemon_threads = True
    handshake_timeout = 10.0

    def finish_request(self, request, client_address):
        request.settimeout(self.handshake_timeout)
        try:
            request.do_handshake()
        except (OSError, ssl.SSLError) as error:
            log.info("TLS handshake with %s failed: %s", client_address, error)
            return
        request.settimeout(None)
        super().finish_request(request, client_address)


class GkeApp:
    """What the handler needs: the service, faults, request log and the accepted token."""

    def __init__(self, service, faults, request_log: RequestLog, token: str):
        self.service = service
        self.faults = faults
        self.request_log = request_log
        self.token = token


def make_gke_server(app: GkeApp, port: int, cert: Path, key: Path) -> ThreadingHTTPServer:
    """A TLS server on 127.0.0.1:port; the handshake runs on the connection's thread."""
    server = TlsHttpServer(("127.0.0.1", port), GkeHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    server.app = app
    return server
