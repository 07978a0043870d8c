"""OAuth as HubSpot does it: the token endpoint (refresh grant, rotating refresh tokens,
HubSpot's 400 bodies) and the bearer check of every ``/crm`` request (private-app token, or an
access token that expires)."""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from connectors.fakes.app import BadRequest, Json, Request, Response
from connectors.fakes.hubspot.config import Config
from connectors.fakes.hubspot.faults import Fault
from connectors.fakes.hubspot.schemas import SchemaBook
from connectors.fakes.hubspot.texts import (
    AUTH_NOT_FOUND,
    expired_body,
    hs_error,
    new_correlation_id,
)
from connectors.fakes.state import StateBase


@dataclass
class AccessToken:
    expires_at: float  # wall clock, so the EXPIRED_AUTHENTICATION context can show it
    issued_at: float


class Tokens(StateBase[Fault]):
    """Refresh tokens, issued access tokens and the token endpoint's counters."""

    config: Config
    book: SchemaBook
    refresh_tokens: set[str]
    access_tokens: dict[str, AccessToken]  # kept across /_control/reset
    token_refreshes: int
    token_errors: Counter[str]

    def clear_tokens(self) -> None:
        self.refresh_tokens = {self.config.refresh_token}
        self.token_refreshes = 0
        self.token_errors = Counter()

    def expire_access_tokens(self) -> int:
        """Every access token issued so far expires now; how many were still valid."""
        now = time.time()
        expired = 0
        for token in self.access_tokens.values():
            if token.expires_at > now:
                token.expires_at = now
                expired += 1
        return expired

    def authenticate(self, headers: dict[str, str]) -> tuple[str | None, Response | None]:
        """("private_app" | "oauth", None) or (None, the 401)."""
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, Response(401, hs_error(AUTH_NOT_FOUND, category="INVALID_AUTHENTICATION"))
        private = self.config.private_app_token
        if private is not None and hmac.compare_digest(token.encode(), private.encode()):
            return "private_app", None
        with self.lock:
            info = self.access_tokens.get(token)
            if info is None:
                return None, Response(
                    401, hs_error(AUTH_NOT_FOUND, category="INVALID_AUTHENTICATION")
                )
            now = time.time()
            if now >= info.expires_at:
                return None, Response(401, expired_body(now - info.expires_at, info.expires_at))
        return "oauth", None

    def token(self, req: Request) -> tuple[Response, Any, list[Json] | None]:
        """POST /oauth/v1/token: (response, body to log, violation problems)."""
        config = self.config
        if req.content_type != "application/x-www-form-urlencoded":
            # [CAPTURE: a JSON body to the token endpoint gets HTTP 415; the endpoint only takes
            # application/x-www-form-urlencoded (public write-up "HubSpot App Governance and
            # Scope Errors, Decoded"; also the spec's requestBody content type, SPEC oauth.json).]
            problems = [
                {
                    "path": "$",
                    "problem": "content-type",
                    "got": req.content_type or None,
                    "expected": "application/x-www-form-urlencoded",
                }
            ]
            return Response(415, hs_error("HTTP 415 Unsupported Media Type")), None, problems
        try:
            text = req.raw.decode("utf-8")
        except UnicodeDecodeError:
            text = req.raw.decode("utf-8", "replace")
        form: dict[str, str] = {k: v[-1] for k, v in req.query.items()}
        form.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
        logged = {k: ("[redacted]" if k == "client_secret" else v) for k, v in form.items()}
        problems = self.book.validate("OAuthTokenForm", form)

        def fail(status: str, message: str) -> tuple[Response, Any, list[Json] | None]:
            # [CAPTURE: {"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh
            # token"} (a HubSpot body quoted in a public test suite; HubSpot/oauth-quickstart-
            # nodejs issue #17 shows 400 with content-length 171, which fits status, message,
            # correlationId and requestId); {"status":"BAD_CLIENT_ID","message":"missing or
            # unknown client id"} (public write-up "HubSpot App Governance and Scope Errors,
            # Decoded", which also notes the client id is checked before the grant type).
            # BAD_CLIENT_SECRET, BAD_GRANT_TYPE and BAD_AUTH_CODE are observed status names;
            # their message texts here are the fake's, in the same "missing or unknown" form.]
            self.token_errors[status] += 1
            body = {
                "status": status,
                "message": message,
                "correlationId": new_correlation_id(),
                "requestId": uuid.uuid4().hex,
            }
            return Response(400, body), logged, problems or None

        with self.lock:
            client_id = form.get("client_id", "")
            if not client_id or not hmac.compare_digest(
                client_id.encode(), config.client_id.encode()
            ):
                return fail("BAD_CLIENT_ID", "missing or unknown client id")
            grant = form.get("grant_type", "")
            if grant == "authorization_code":
                return fail("BAD_AUTH_CODE", "missing or unknown auth code")
            if grant != "refresh_token":
                return fail("BAD_GRANT_TYPE", "missing or unknown grant type")
            secret = form.get("client_secret", "")
            if not secret or not hmac.compare_digest(
                secret.encode(), config.client_secret.encode()
            ):
                return fail("BAD_CLIENT_SECRET", "missing or unknown client secret")
            refresh = form.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                return fail("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
            if config.rotate_refresh_tokens:
                self.refresh_tokens.discard(refresh)
                refresh = str(uuid.uuid4())
                self.refresh_tokens.add(refresh)
            access = "CN" + secrets.token_urlsafe(48)
            now = time.time()
            self.access_tokens[access] = AccessToken(now + config.token_ttl, now)
            self.token_refreshes += 1
            # [SPEC oauth.json AccessTokenResponse; CAPTURE {"refresh_token":...,"access_token":
            # ...,"expires_in":1800} quoted by useparagon.com's HubSpot expired-token page.]
            body = {
                "token_type": "bearer",
                "refresh_token": refresh,
                "access_token": access,
                "expires_in": config.token_ttl,
            }
        return Response(200, body), logged, problems or None

    def set_refresh_token(self, body: Any) -> Json:
        token = None
        if isinstance(body, dict):
            token = body.get("refresh_token")
        if token is not None and (not isinstance(token, str) or not token):
            raise BadRequest(
                "invalid refresh token",
                [{"field": "refresh_token", "message": "must be a non-empty string"}],
            )
        with self.lock:
            token = token or str(uuid.uuid4())
            self.refresh_tokens = {token}
            return {"refresh_token": token}

    def auth_state(self) -> Json:
        with self.lock:
            now = time.time()
            return {
                "refresh_tokens": sorted(self.refresh_tokens),
                "private_app_token": self.config.private_app_token is not None,
                "access_tokens": [
                    {
                        "access_token": token,
                        "expires_in": round(info.expires_at - now, 3),
                        "expired": now >= info.expires_at,
                    }
                    for token, info in self.access_tokens.items()
                ],
            }
