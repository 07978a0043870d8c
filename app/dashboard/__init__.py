"""The dashboard (/ui): server-rendered pages over the same core operations as the API and
the CLI. Sign-in takes an operator token and keeps a session cookie (HttpOnly, SameSite=Strict,
Secure when served over HTTPS or behind a proxy saying so); every form that changes anything
carries the session's CSRF token, and a POST without it is refused (403). Pages load nothing
from another origin (one local stylesheet, a few lines of inline script under a nonce).

The session key: CRMHUB_SECRET_KEY, else derived from the operator tokens
(core/operator_tokens.py: session_secret), so every web process and host agrees on it without
anything to share, and changing a token signs every session out.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Request, Response, abort, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from app.operator_auth import Operator, session_operator
from core.operator_tokens import session_secret
from core.settings import Settings

SESSION_SECONDS = 12 * 3600
OPEN_ENDPOINTS = {"dashboard.login", "dashboard.static"}


def served_securely(req: Request) -> bool:
    return req.is_secure or req.headers.get("X-Forwarded-Proto", "").lower() == "https"


class DashboardSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever this request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return served_securely(request)


def register(app: Flask, settings: Settings) -> None:
    from app.dashboard import dead_letter_pages, views  # noqa: F401  (pages join views.bp)

    key = session_secret(settings.secret_key, settings.operator_tokens)
    app.secret_key = key or secrets.token_hex(32)  # no tokens: nobody can sign in anyway
    app.session_interface = DashboardSessions()
    app.config.update(
        SESSION_COOKIE_NAME="crmhub_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/ui",
        PERMANENT_SESSION_LIFETIME=SESSION_SECONDS,
    )
    app.register_blueprint(views.bp)


def current_operator() -> Operator:
    return g.ui_operator


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def signed_in() -> Any:
    from app.api.views import hub, runner

    g.csp_nonce = secrets.token_urlsafe(16)
    if request.method == "POST":
        given = request.form.get("csrf", "")
        if not given or not hmac.compare_digest(given, session.get("csrf", "")):
            abort(403, "this form is missing its CSRF token or it is stale: reload the page")
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    found = session_operator(hub().settings, session.get("name"), session.get("fp"))
    if found is None:
        session.pop("name", None)
        return redirect(url_for("dashboard.login") + "?" + urlencode({"next": request.full_path}))
    g.ui_operator = found
    runner.adopt_stopped(hub())  # bulk operations whose web process stopped: take them over
    if request.method == "POST" and not found.may_act:
        abort(403, f"{found.name} is read_only: actions need an admin token")
    return None


def security_headers(response: Response) -> Response:
    nonce = getattr(g, "csp_nonce", "")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self'; img-src 'self'; script-src 'nonce-{nonce}'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "nonce": lambda: getattr(g, "csp_nonce", "")}
