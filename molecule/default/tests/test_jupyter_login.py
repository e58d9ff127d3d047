"""Jupyter through its LoadBalancer, as a person at the jupyter_url would use it: the
role's password logs in (the /login form with its _xsrf cookie), a wrong password and
the tutorial's "dask" do not, and nothing under /api or /lab answers without a login.

Shared by the default scenario (generated password) and the helm3 scenario (a password
of its own). On a sandbox without a real node (KWOK pods listen nowhere) every test
here is skipped with that reason, never passed.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.integration import harness

TUTORIAL_PASSWORD = "dask"  # noqa: S105 - the Helm 2 tutorial's public password, refused
WRONG_PASSWORD = "not-the-password"  # noqa: S105
START_TIMEOUT = 300  # seconds: Jupyter installs the extra pip packages before it starts
REQUEST_TIMEOUT = 20
XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


# Real pods only: skipped, with the reason, in a sandbox without a real node.
pytestmark = pytest.mark.usefixtures("real_node")


@pytest.fixture(scope="module")
def jupyter(endpoints_file: Path) -> str:
    """Jupyter's base URL behind its LoadBalancer, once it answers."""
    endpoints = json.loads(endpoints_file.read_text())
    assert endpoints["jupyter_url"], "Jupyter is disabled in this scenario"
    base = endpoints["jupyter_url"].removesuffix("/lab")
    assert endpoints["exposure"] == "LoadBalancer", "the scenario must expose Jupyter"
    harness.wait_until(
        lambda: Browser(base).get("/login")[0] == 200,
        timeout=START_TIMEOUT,
        what=f"Jupyter to answer {base}/login through its LoadBalancer",
        interval=2,
    )
    return base


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # answer the 302 itself: where it points is part of the check


class Browser:
    """Cookies kept between requests, redirects not followed, no proxy."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.cookies),
            NoRedirect,
        )

    def request(self, path: str, data: dict | None = None) -> tuple[int, dict, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body)  # noqa: S310 - LB address
        try:
            with self.opener.open(request, timeout=REQUEST_TIMEOUT) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as answer:
            return answer.code, dict(answer.headers), answer.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, {}, f"{type(exc).__name__}: {exc}"

    def get(self, path: str) -> tuple[int, dict, str]:
        return self.request(path)

    def log_in(self, password: str) -> tuple[int, dict, str]:
        """The /login form as a browser submits it: its _xsrf field and cookie, the password."""
        status, _, page = self.get("/login")
        assert status == 200, f"/login answered {status}: {page[:300]}"
        field = XSRF_FIELD.search(page)
        assert field, "the login page has no _xsrf field"
        assert any(cookie.name == "_xsrf" for cookie in self.cookies), "no _xsrf cookie"
        return self.request("/login?next=%2Flab", {"_xsrf": field.group(1), "password": password})

    def logged_in(self) -> bool:
        return any(cookie.name.startswith("username-") for cookie in self.cookies)


def test_the_role_password_logs_in_and_opens_the_api(jupyter, jupyter_password):
    browser = Browser(jupyter)
    status, headers, _ = browser.log_in(jupyter_password)
    assert status == 302, f"the login was not accepted ({status})"
    assert headers.get("Location", "").endswith("/lab")
    assert browser.logged_in(), "no login cookie after a successful login"
    status, _, body = browser.get("/api/status")
    assert status == 200, body[:300]
    assert "started" in json.loads(body)
    assert browser.get("/lab")[0] == 200


@pytest.mark.parametrize("wrong", [WRONG_PASSWORD, TUTORIAL_PASSWORD])
def test_other_passwords_are_refused(jupyter, wrong):
    browser = Browser(jupyter)
    status, _, page = browser.log_in(wrong)
    assert status != 302, f"{wrong!r} logged in"
    assert not browser.logged_in()
    assert "Invalid credentials" in page
    assert browser.get("/api/contents")[0] == 403


@pytest.mark.parametrize(
    "path", ["/api/contents", "/api/kernels", "/api/sessions", "/api/terminals"]
)
def test_the_api_refuses_anonymous_requests(jupyter, path):
    status, _, body = Browser(jupyter).get(path)
    assert status == 403, f"{path} answered {status} without a login: {body[:200]}"


def test_the_lab_sends_anonymous_visitors_to_the_login(jupyter):
    status, headers, _ = Browser(jupyter).get("/lab")
    assert status == 302
    assert "/login" in headers.get("Location", "")
