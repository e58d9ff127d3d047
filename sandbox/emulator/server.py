"""HTTPS handler of the emulated Google APIs, one TLS port for every host.

The Host header picks the API: container.googleapis.com v1 (clusters, nodePools,
operations), oauth2.googleapis.com (token endpoint, tokeninfo), and the read-only
serviceusage, compute and iam calls of google_apis.py. `POST /sandbox/tokenreview`
on the port itself is the TokenReview webhook of the KWOK clusters' API servers.

GKE serves both URL forms: /v1/projects/{p}/locations/{l}/... and the older
/v1/projects/{p}/zones/{z}/... (setSize is `nodePools/{np}:setSize` in the
first, `nodePools/{np}/setSize` in the second). Every API call is written to the
request log with its host, never with its token.
"""

import json
import logging
import ssl
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from sandbox.emulator import google_apis
from sandbox.emulator.gke import ApiError, GkeService, check_location
from sandbox.emulator.tokens import TokenError

log = logging.getLogger("sandbox.gke")

GKE_HOST = "container.googleapis.com"
OAUTH_HOST = "oauth2.googleapis.com"
CLOUD_HOSTS = ("serviceusage.googleapis.com", "compute.googleapis.com", "iam.googleapis.com")
# Every host the emulator answers for (the CONNECT proxy and the certificate use it).
HOSTS = (GKE_HOST, OAUTH_HOST, *CLOUD_HOSTS)
TOKEN_REVIEW_PATH = "/sandbox/tokenreview"  # noqa: S105 - a path, not a secret

FAULT_ERRORS = {
    429: ApiError(
        429, "RESOURCE_EXHAUSTED", "Sandbox fault injection: quota exceeded, retry later."
    ),
    500: ApiError(500, "INTERNAL", "Sandbox fault injection: internal error encountered."),
    503: ApiError(
        503, "UNAVAILABLE", "Sandbox fault injection: the service is currently unavailable."
    ),
    504: ApiError(
        504,
        "DEADLINE_EXCEEDED",
        "Sandbox fault injection: deadline expired before operation could complete.",
    ),
}
# Google's front end answers 502 with an HTML page, not the API's JSON.
BAD_GATEWAY_PAGE = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
    "  <title>Error 502 (Server Error)!!1</title>\n"
    "  <p><b>502.</b> <ins>That\u2019s an error.</ins>\n"
    "  <p>The server encountered a temporary error and could not complete your request."
    "<p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>\n"
)
UNAUTHENTICATED = ApiError(
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
)
UNKNOWN_URL = ApiError(404, "NOT_FOUND", "Requested entity was not found.")


class RequestLog:
    """Google API calls as JSON lines in a file and in memory (GET /requests)."""

    def __init__(self, path: Path | None):
        self._path = path
        self._lock = threading.Lock()
        self._entries: list[dict] = []

    def add(
        self, method: str, path: str, status: int, fault: str | None, host: str = GKE_HOST
    ) -> None:
        entry = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "host": host,
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

    def entries(self, host: str | None = GKE_HOST) -> list[dict]:
        """The calls to `host` (None: to every host)."""
        with self._lock:
            return [e for e in self._entries if host is None or e["host"] == host]

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
        url = urlsplit(self.path)
        path = url.path
        host = (self.headers.get("Host") or GKE_HOST).rsplit(":", 1)[0].lower()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == TOKEN_REVIEW_PATH and self.command == "POST":
            # Asked by kube-apiservers on every uncached request: not an API call to log.
            self._send(200, app.tokens.review(self._json_or_empty(raw)))
            return
        if host == OAUTH_HOST:
            self._oauth(path, raw)
            return
        fault = None
        try:
            if host in CLOUD_HOSTS:
                self._check_token(app)
                call = google_apis.Call(host, self.command, path, url.query, self._parse_json(raw))
                result = google_apis.route(app.cloud, app.service, call)
                status = 200
            else:
                host = GKE_HOST
                code = app.faults.take_http_error(self.command, path)
                if code is not None:
                    fault = f"http_errors:{code}"
                    self._answer_fault(app, path, code, fault, host)
                    return
                self._check_token(app)
                app.cloud.require_service(app.cloud.project_id, GKE_HOST)
                status, result = 200, route(app.service, self.command, path, self._parse_json(raw))
                operation = result.get("name") if "operationType" in result else None
                if operation:
                    op_fault = app.service.operation_fault(operation)
                    if op_fault and self.command != "GET":
                        fault = f"operations:{op_fault}"
                lost = app.faults.take_http_error(self.command, path, after=True)
                if lost is not None:  # carried out, but the caller is told it failed
                    fault = f"http_errors:{lost}:after"
                    self._answer_fault(app, path, lost, fault, host)
                    return
        except ApiError as error:
            status, result = error.http_code, error.body()
        except Exception:  # answer 500 like Google, not a dropped connection
            log.exception("internal error on %s %s%s", self.command, host, path)
            status = 500
            result = ApiError(500, "INTERNAL", "Internal error encountered.").body()
        app.request_log.add(self.command, path, status, fault, host)
        log.info(
            "%s %s%s %s%s", self.command, host, path, status, f" fault={fault}" if fault else ""
        )
        self._send(status, result)

    def _check_token(self, app) -> None:
        """401 for a missing, unknown or expired access token, as Google answers."""
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or app.tokens.remaining(presented.strip()) is None:
            raise UNAUTHENTICATED

    def _oauth(self, path: str, raw: bytes) -> None:
        """The token endpoint and tokeninfo (form-encoded, OAuth error bodies)."""
        app = self.server.app
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        form.update(dict(parse_qsl(urlsplit(self.path).query)))
        try:
            if path == "/token" and self.command == "POST":
                status, body = 200, app.tokens.grant(form)
            elif path == "/tokeninfo" and self.command in ("GET", "POST"):
                status, body = 200, app.tokens.info(form.get("access_token", ""))
            else:
                status, body = 404, {"error": "not_found", "error_description": "Not Found"}
        except TokenError as error:
            status, body = error.status, error.body
        # The request log never holds the query: tokeninfo may carry the token there.
        app.request_log.add(self.command, path, status, None, OAUTH_HOST)
        self._send(status, body)

    @staticmethod
    def _json_or_empty(raw: bytes) -> dict:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

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
        self._send_raw(status, "application/json; charset=UTF-8", json.dumps(body, indent=2))

    def _answer_fault(self, app, path: str, code: int, fault: str, host: str) -> None:
        """An injected HTTP error: Google's front-end page for a 502 (sent and logged
        here), else GKE's error, raised for the caller's error answer."""
        if code != 502:
            raise FAULT_ERRORS[code]
        app.request_log.add(self.command, path, code, fault, host)
        self._send_raw(code, "text/html; charset=UTF-8", BAD_GATEWAY_PAGE)

    def _send_raw(self, status: int, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
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
    """What the handler needs: the GKE service, the project around it, faults, the
    request log and the access tokens."""

    def __init__(self, service, cloud, faults, request_log: RequestLog, tokens):
        self.service = service
        self.cloud = cloud
        self.faults = faults
        self.request_log = request_log
        self.tokens = tokens


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
