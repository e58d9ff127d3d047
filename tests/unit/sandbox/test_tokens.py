"""Access tokens: google-auth's own service-account flow against the emulator's token
endpoint, expiry honoured by the APIs (401) and by tokeninfo and TokenReview."""

import json
import time

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.service_account
import pytest
import requests

from sandbox.emulator.tokens import Issued, TokenError, TokenService, make_service_account_key
from tests.unit.sandbox.conftest import GKE, TOKEN

ZONE = "us-central1-a"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def credentials(box):
    """What google.cloud's modules build from a JSON key, talking through the proxy."""
    creds = google.oauth2.service_account.Credentials.from_service_account_file(
        str(box.key_file)
    ).with_scopes(SCOPES)
    session = requests.Session()
    session.trust_env = False
    session.proxies = dict(box.session.proxies)
    session.verify = box.session.verify
    return creds, google.auth.transport.requests.Request(session)


def authorized(box, token: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.proxies = dict(box.session.proxies)
    session.verify = box.session.verify
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def test_google_auth_gets_a_token_that_the_gke_api_accepts(keyed_sandbox):
    creds, request = credentials(keyed_sandbox)
    creds.refresh(request)
    assert creds.token.startswith("ya29.")
    assert 3500 < (creds.expiry - creds.expiry.now()).total_seconds() <= 3600
    listed = authorized(keyed_sandbox, creds.token).get(
        f"{GKE}/projects/test-project/locations/{ZONE}/clusters", timeout=10
    )
    assert listed.status_code == 200, listed.text
    hosts = {(e["host"], e["path"], e["status"]) for e in keyed_sandbox.requests_log()}
    assert (
        "container.googleapis.com",
        f"/v1/projects/test-project/locations/{ZONE}/clusters",
        200,
    ) in hosts
    every = keyed_sandbox.plain.get(f"{keyed_sandbox.admin}/requests?host=*", timeout=5).json()
    assert {"host": "oauth2.googleapis.com", "method": "POST", "path": "/token"}.items() <= every[
        0
    ].items()


def test_an_expired_token_is_401_and_tokeninfo_says_so(keyed_sandbox):
    creds, request = credentials(keyed_sandbox)
    creds.refresh(request)
    info = keyed_sandbox.google(
        "POST", "https://oauth2.googleapis.com/tokeninfo", data={"access_token": creds.token}
    )
    assert info.status_code == 200
    assert int(info.json()["expires_in"]) > 3500
    expired = keyed_sandbox.plain.post(f"{keyed_sandbox.admin}/tokens/expire", timeout=5).json()
    assert expired == {"expired": 1}
    answer = authorized(keyed_sandbox, creds.token).get(
        f"{GKE}/projects/test-project/locations/{ZONE}/clusters", timeout=10
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    info = keyed_sandbox.google(
        "POST", "https://oauth2.googleapis.com/tokeninfo", data={"access_token": creds.token}
    )
    assert (info.status_code, info.json()["error"]) == (400, "invalid_token")
    # The static sandbox token outlives the expiry.
    assert keyed_sandbox.call("GET", ZONE, "/clusters").status_code == 200


def test_a_key_the_emulator_does_not_know_is_refused(sandbox, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(make_service_account_key("test-project", "x")))
    sandbox.key_file = other
    creds, request = credentials(sandbox)
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        creds.refresh(request)


def test_token_review_answers_for_valid_expired_and_unknown_tokens():
    clock = [1000.0]
    service = TokenService("static", {}, lifetime=60, clock=lambda: clock[0])
    service._issued["ya29.a"] = Issued("a@p.iam.gserviceaccount.com", "", 1060.0)
    review = {"apiVersion": "authentication.k8s.io/v1", "spec": {"token": "ya29.a"}}
    status = service.review(review)["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "a@p.iam.gserviceaccount.com"
    assert "system:masters" in status["user"]["groups"]
    assert service.review({"spec": {"token": "static"}})["status"]["authenticated"] is True
    clock[0] = 1061.0
    assert service.review(review)["status"]["authenticated"] is False
    assert service.review({"spec": {"token": "nope"}})["status"]["authenticated"] is False
    assert service.review({})["status"]["authenticated"] is False


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b"},
            "invalid_grant",
        ),
    ],
)
def test_bad_token_requests_get_oauth_errors(form, error):
    with pytest.raises(TokenError) as raised:
        TokenService("static", {}).grant(form)
    assert raised.value.status == 400
    assert raised.value.body["error"] == error


def test_the_static_token_never_expires():
    clock = [0.0]
    service = TokenService(TOKEN, {}, clock=lambda: clock[0])
    clock[0] = time.time() + 10**6
    assert service.remaining(TOKEN) is not None
    assert service.expire_all() == 0
    assert service.remaining(TOKEN) is not None
