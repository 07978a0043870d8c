"""OAuth2 for a connection (the refresh-token flow, or the client-credentials flow), shared by
every worker through Redis.

The access token is refreshed before it expires (when less than a tenth of its life, and at
least a minute, is left), by one worker at a time under a Redis lock; the others wait and
read the new token. After a 401, one forced refresh is tried (unless another worker already
replaced the token that failed); a refresh the provider refuses (invalid_grant,
BAD_REFRESH_TOKEN, or Zoho's HTTP 200 `{"error": "invalid_code"}`: an answer without an access
token is a refusal whatever its status) is an AuthError: the connection pauses until an
operator re-authorises. The token answer's API address (Salesforce's `instance_url`, the
`api_domain` of Zoho and Pipedrive) is kept with the token.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import httpx
from redis.exceptions import LockError

from core.errors import AuthError, TransientError
from core.ledger.tokens import TokenState, TokenStore
from core.ledger.translate import translate_redis_errors

MIN_MARGIN_SECONDS = 60.0
#: the auth types this session serves, and the grant each one asks the token endpoint for
GRANTS = {"oauth2": "refresh_token", "client_credentials": "client_credentials"}


class OAuth2Session:
    def __init__(
        self,
        connection: str,
        auth: Mapping[str, Any],
        environ: Mapping[str, str],
        store: TokenStore,
        client: httpx.Client,
        default_token_url: str,
        *,
        default_lifetime: float = 1800.0,
        scope: str = "",
        client_auth: str = "body",
    ) -> None:
        self.connection = connection
        self.auth = auth
        self.environ = environ
        self.store = store
        self.client = client
        self.token_url = str(auth.get("token_url") or default_token_url)
        self.grant = GRANTS[str(auth.get("type", "oauth2"))]
        #: a token answer without expires_in (Salesforce's) is used this long, or until a 401
        self.default_lifetime = default_lifetime
        #: the `scope` a client-credentials request names (Entra ID needs `{resource}/.default`);
        #: empty: none is sent, as Salesforce and HubSpot expect
        self.scope = scope
        #: the state of the token access_token() last returned (its instance_url)
        self.last_state = TokenState()
        #: how the app's client id and secret reach the token endpoint: "body" (form fields,
        #: RFC 6749 section 2.3.1's client_secret_post) or "basic" (an Authorization: Basic
        #: header, the RFC's default, which Intuit's token endpoint asks for)
        self.client_auth = client_auth

    def _fresh(self, state: TokenState, now: float) -> bool:
        lifetime = max(0.0, state.expires_at - state.obtained_at)
        margin = max(MIN_MARGIN_SECONDS, lifetime / 10)
        return bool(state.access_token) and state.expires_at - now > margin

    def access_token(self, *, failed: str | None = None) -> str:
        """A usable access token. `failed`: the token the target just refused (401)."""
        state = self.store.get(self.connection)
        if not self._usable(state, failed):
            state = self._refreshed(failed)
        self.last_state = state
        return state.access_token

    def _refreshed(self, failed: str | None) -> TokenState:
        try:
            with translate_redis_errors(), self.store.refresh_lock(self.connection):
                state = self.store.get(self.connection)  # someone may have refreshed
                if self._usable(state, failed):
                    return state
                return self._refreshed_or_still_valid(state, failed)
        except LockError as exc:
            # another worker's refresh outlasted our wait (or outlived the lock): not the
            # delivery's fault, and not a bug in the hub
            raise TransientError(
                f"token refresh for {self.connection!r} is held up by another worker: {exc}"
            ) from None

    def _refreshed_or_still_valid(self, state: TokenState, failed: str | None) -> TokenState:
        """Refresh; if that fails while the token in hand still works (an early refresh),
        keep using it: the failure is recorded for the credential_expiring alert, which warns
        on-call before the token expires and the connection pauses."""
        try:
            fresh = self._refresh(state)
        except (AuthError, TransientError) as exc:
            now = time.time()
            self.store.refresh_failed(self.connection, str(exc), now, state.expires_at)
            if failed is None and state.access_token and state.expires_at > now:
                return state
            raise
        self.store.refresh_succeeded(self.connection)
        return fresh

    def _usable(self, state: TokenState, failed: str | None) -> bool:
        if failed is not None:
            return bool(state.access_token) and state.access_token != failed
        return self._fresh(state, time.time())

    def _refresh(self, state: TokenState) -> TokenState:
        form = {
            "grant_type": self.grant,
            "client_id": self.environ.get(str(self.auth["client_id_env"]), ""),
            "client_secret": self.environ.get(str(self.auth["client_secret_env"]), ""),
        }
        if self.scope and self.grant == "client_credentials":
            form["scope"] = self.scope
        refresh_token = ""
        if self.grant == "refresh_token":
            refresh_token = state.refresh_token or self.environ.get(
                str(self.auth["refresh_token_env"]), ""
            )
            if not refresh_token:
                raise AuthError(
                    f"connection {self.connection!r} has no refresh token; install one "
                    f"with `crmhub auth set-refresh-token {self.connection}`"
                )
            form["refresh_token"] = refresh_token
        headers = {}
        if self.client_auth == "basic":
            pair = f"{form.pop('client_id')}:{form.pop('client_secret')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            response = self.client.post(self.token_url, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise TransientError(f"token refresh failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(
                f"token endpoint answered HTTP {response.status_code}", status=response.status_code
            )
        if response.status_code != 200:
            # invalid_grant / BAD_REFRESH_TOKEN / bad client credentials: a person must act
            fix = (
                f"re-authorise and run `crmhub auth set-refresh-token {self.connection}`"
                if self.grant == "refresh_token"
                else "check the app's client id, secret and run-as user"
            )
            what = (
                "our refresh token" if self.grant == "refresh_token" else "our client credentials"
            )
            raise AuthError(
                f"the provider refused {what} (HTTP {response.status_code}): "
                f"{_reason(response)}; {fix}",
                status=response.status_code,
                excerpt=response.text[:300],
            )
        body = response.json()
        if not isinstance(body, dict) or "access_token" not in body:
            raise _refused_in_body(self.connection, body, response)
        now = time.time()
        new = TokenState(
            access_token=str(body["access_token"]),
            expires_at=now + float(body.get("expires_in", self.default_lifetime)),
            refresh_token=str(body.get("refresh_token") or refresh_token),
            obtained_at=now,
            # where this token's API calls go: Salesforce's instance_url, the api_domain of
            # Zoho (the customer's data centre) and Pipedrive (the company's own host)
            instance_url=str(body.get("instance_url") or body.get("api_domain") or "").rstrip("/"),
        )
        self.store.save(self.connection, new)
        return new


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("status") or body.get("error") or "") + (
            f" ({body.get('message') or body.get('error_description')})"
            if body.get("message") or body.get("error_description")
            else ""
        )
    return str(body)[:200]


#: Zoho throttles token requests (10 per refresh token in 10 minutes) with an HTTP 200 answer
#: whose error says "Access Denied": it passes, unlike a refused grant
#: (https://www.zoho.com/crm/developer/docs/api/v8/token-validity.html)
THROTTLE_SECONDS = 60.0


def _refused_in_body(connection: str, body: Any, response: httpx.Response) -> Exception:
    """A 200 answer without an access token. Zoho answers a revoked or unknown refresh
    token so, `{"error": "invalid_code"}` [observed, crm-apis.md 3.1]: the status cannot be
    trusted, the body decides. A throttle passes (TransientError); anything else is a
    refusal a person must fix (AuthError: pause, hold, alert)."""
    reason = str(body.get("error") or "") if isinstance(body, dict) else ""
    if reason.lower() == "access denied":
        return TransientError(
            f"the provider throttled our token requests: {_reason(response)}",
            status=response.status_code,
            retry_after=THROTTLE_SECONDS,
            excerpt=response.text[:300],
        )
    return AuthError(
        f"the provider refused our refresh token (HTTP {response.status_code}, "
        f"no access token): {_reason(response) or response.text[:200]}; re-authorise and run "
        f"`crmhub auth set-refresh-token {connection}`",
        status=response.status_code,
        excerpt=response.text[:300],
    )
