"""Google OAuth 2.0 access tokens of the sandbox, with an expiry every API honours.

What real Google does, in memory:

- the token endpoint (`POST https://oauth2.googleapis.com/token`) swaps a service
  account's signed JWT (RFC 7523, what google-auth sends for a JSON key) for an
  access token that expires after `lifetime` seconds;
- `tokeninfo` tells how long a token has left (400 `invalid_token` once it expired);
- every emulated Google API answers 401 UNAUTHENTICATED for an expired or unknown
  token, and every KWOK cluster's kube-apiserver asks `review` (a TokenReview
  webhook) whether a bearer token is valid, as GKE's API servers accept Google
  access tokens.

The sandbox's own token (`.sandbox/token`) never expires: benchmarks and manual
calls use it. `expire_all` ends every token issued so far, as an hour passing would.
"""

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_LIFETIME = 3600  # seconds, as Google's access tokens
CLOCK_SKEW = 300  # seconds of JWT iat/exp leeway, as Google allows
# Who a valid token is inside the clusters: GKE maps Google identities to RBAC users;
# the sandbox makes every one of them a cluster admin.
CLUSTER_GROUPS = ["system:masters", "system:authenticated"]


def make_service_account_key(project: str, account: str) -> dict:
    """A service-account JSON key, as `gcloud iam service-accounts keys create` writes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"{account}@{project}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }


def public_key_of(key_file: dict) -> tuple[str, str]:
    """(client e-mail, PEM public key) of a service-account JSON key."""
    private = serialization.load_pem_private_key(key_file["private_key"].encode(), None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key_file["client_email"], public.decode()


class TokenError(Exception):
    """An OAuth error answer: HTTP status and the {"error", "error_description"} body."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


@dataclass
class Issued:
    email: str
    scope: str
    expires: float  # epoch seconds


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TokenService:
    """Issues and checks the access tokens of one sandbox (thread-safe)."""

    def __init__(
        self,
        static_token: str,
        service_accounts: dict[str, str],
        lifetime: int = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.time,
    ):
        """`service_accounts`: client e-mail -> PEM public key of its JSON key."""
        self._static = static_token
        self._keys = {
            email: serialization.load_pem_public_key(pem.encode())
            for email, pem in service_accounts.items()
        }
        self._lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, Issued] = {}

    # ---- the token endpoint ------------------------------------------------

    def grant(self, form: dict[str, str]) -> dict:
        """Answer a token request (form fields); raise TokenError like Google does."""
        if form.get("grant_type") != JWT_GRANT_TYPE:
            raise TokenError(400, "unsupported_grant_type", "Invalid grant_type.")
        claims = self._verified_claims(form.get("assertion", ""))
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self._lock:
            lifetime = self._lifetime
            self._issued[token] = Issued(
                claims["iss"], claims.get("scope", ""), self._clock() + lifetime
            )
        return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}

    def _verified_claims(self, assertion: str) -> dict:
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(payload_b64))
            signature = _b64decode(signature_b64)
        except ValueError:
            raise TokenError(400, "invalid_grant", "Invalid JWT: malformed.") from None
        key = self._keys.get(claims.get("iss"))
        if header.get("alg") != "RS256" or key is None:
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            key.verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.") from None
        now = self._clock()
        if claims.get("aud") != TOKEN_URI:
            raise TokenError(400, "invalid_grant", f"Invalid JWT audience: expected {TOKEN_URI}.")
        if not (
            isinstance(claims.get("exp"), int | float) and claims["exp"] > now - CLOCK_SKEW
        ) or not (isinstance(claims.get("iat"), int | float) and claims["iat"] < now + CLOCK_SKEW):
            raise TokenError(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        return claims

    # ---- checks --------------------------------------------------------------

    def remaining(self, token: str) -> float | None:
        """Seconds the token is still valid for; None when unknown or expired."""
        if token and secrets.compare_digest(token, self._static):
            return float(self._lifetime)
        with self._lock:
            issued = self._issued.get(token)
        if issued is None:
            return None
        left = issued.expires - self._clock()
        return left if left > 0 else None

    def info(self, token: str) -> dict:
        """tokeninfo: what Google says about a token; TokenError for an invalid one."""
        left = self.remaining(token)
        if left is None:
            raise TokenError(400, "invalid_token", "Invalid Value")
        with self._lock:
            issued = self._issued.get(token)
        return {
            "email": issued.email if issued else "sandbox-static-token",
            "scope": issued.scope if issued else "https://www.googleapis.com/auth/cloud-platform",
            "expires_in": str(int(left)),
            "exp": str(int(self._clock() + left)),
            "access_type": "online",
        }

    def review(self, request: dict) -> dict:
        """The answer to a kube-apiserver TokenReview (authentication.k8s.io/v1)."""
        token = ((request or {}).get("spec") or {}).get("token", "")
        answer = {
            "apiVersion": (request or {}).get("apiVersion", "authentication.k8s.io/v1"),
            "kind": "TokenReview",
        }
        if self.remaining(token) is None:
            answer["status"] = {"authenticated": False, "error": "token expired or unknown"}
            return answer
        with self._lock:
            issued = self._issued.get(token)
        user = issued.email if issued else "sandbox-static-token"
        answer["status"] = {
            "authenticated": True,
            "user": {"username": user, "uid": user, "groups": list(CLUSTER_GROUPS)},
            "audiences": (request.get("spec") or {}).get("audiences") or [],
        }
        return answer

    # ---- admin ---------------------------------------------------------------

    def expire_all(self) -> int:
        """End every token issued so far (not the sandbox's static one); return how many."""
        with self._lock:
            count = len(self._issued)
            self._issued.clear()
        return count

    def issued_count(self) -> int:
        with self._lock:
            return len(self._issued)
