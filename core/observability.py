"""Error reporting to Sentry, initialised once per process wherever SENTRY_DSN is set.

The receiver (create_app), the Celery worker and beat (workers.celery_app) each call
`init_sentry` at start; without a DSN nothing is initialised and nothing is sent. What leaves
the process is scrubbed first: webhook bodies, request headers (signatures, tokens, cookies)
and query strings never reach Sentry, whatever an integration attaches.
"""

from __future__ import annotations

import functools
import logging
import re
from importlib import metadata
from typing import Any, Literal

from core.settings import Settings

log = logging.getLogger("crmhub.sentry")

#: request headers worth keeping on an error report: none of them can carry a secret
SAFE_HEADERS = frozenset({"content-type", "content-length", "user-agent"})


def _release() -> str:
    try:
        return f"crmhub@{metadata.version('crmhub')}"
    except metadata.PackageNotFoundError:
        return "crmhub@unknown"


#: a key holding any of these words holds a secret, wherever it appears in a report
SECRET_WORDS = (
    "token", "secret", "password", "passwd", "authorization", "signature", "api_key",
    "apikey", "cookie", "session", "credential", "private_key", "routing_key",
)  # fmt: skip
#: personal data scrubbed by default (CRMHUB_SENTRY_SCRUB_FIELDS adds to it)
DEFAULT_PII_FIELDS = frozenset(
    {"email", "phone", "name", "first_name", "last_name", "firstname", "lastname", "address"}
)
FILTERED = "[Filtered]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
#: the parts of an event that carry data of ours (not the SDK's own: sdk, release...)
_WALKED = ("extra", "contexts", "breadcrumbs", "tags", "user", "message", "logentry")


def scrub(
    event: dict[str, Any], hint: object = None, pii_fields: frozenset[str] = DEFAULT_PII_FIELDS
) -> dict[str, Any]:
    """Sentry's before_send: keep the error, drop anything a sender or target sent us:
    request bodies, headers (but three harmless ones), query strings and cookies; any value
    under a key that names a secret or a configured personal field; email addresses in text."""
    request = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {k: v for k, v in headers.items() if k.lower() in SAFE_HEADERS}
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
    for key in _WALKED:
        if key in event:
            event[key] = _clean(event[key], pii_fields)
    for exc in (event.get("exception") or {}).get("values") or []:
        if isinstance(exc, dict) and isinstance(exc.get("value"), str):
            exc["value"] = _EMAIL.sub(FILTERED, exc["value"])
    return event


def _clean(value: Any, pii_fields: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: FILTERED if _sensitive(str(k), pii_fields) else _clean(v, pii_fields)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_clean(v, pii_fields) for v in value]
    if isinstance(value, str):
        return _EMAIL.sub(FILTERED, value)
    return value


def _sensitive(key: str, pii_fields: frozenset[str]) -> bool:
    lowered = key.lower()
    return lowered in pii_fields or any(word in lowered for word in SECRET_WORDS)


def init_sentry(settings: Settings, process: str) -> bool:
    """Initialise the Sentry SDK for this process (`web`, `worker`, `beat`); True if it was.

    Flask's and Celery's integrations switch on by themselves when those are importable, so an
    unhandled error in a request or a task is reported with its traceback.
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    try:
        sentry_sdk.init(
            dsn=settings.sentry_dsn,
            release=_release(),
            before_send=functools.partial(  # type: ignore[arg-type]
                scrub, pii_fields=DEFAULT_PII_FIELDS | settings.sentry_scrub_fields
            ),
            max_request_body_size="never",
            include_local_variables=False,
        )
    except Exception as exc:  # a malformed DSN must not keep the hub from starting
        log.error("SENTRY_DSN is set but Sentry could not be initialised: %s", exc)
        return False
    sentry_sdk.set_tag("crmhub.process", process)
    return True


#: Sentry levels for alert severities
_LEVELS: dict[str, Literal["fatal", "error", "warning", "info"]] = {
    "critical": "fatal",
    "error": "error",
    "warning": "warning",
    "info": "info",
}


def report_alert(alert: dict[str, Any]) -> None:
    """An alert that fires, as a Sentry message (when Sentry is initialised in this process),
    grouped by its dedup key so one alert is one Sentry issue."""
    if alert.get("status") != "firing":
        return
    try:
        import sentry_sdk

        if not sentry_sdk.is_initialized():
            return
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("alert.kind", alert.get("kind"))
            scope.set_tag("connection", alert.get("connection") or "-")
            scope.fingerprint = ["crmhub-alert", str(alert.get("dedup_key"))]
            scope.set_context("alert", {k: alert.get(k) for k in ("id", "dedup_key", "details")})
            sentry_sdk.capture_message(
                str(alert.get("summary")), level=_LEVELS.get(str(alert.get("severity")), "error")
            )
    except Exception:  # reporting must never stop the alerts themselves
        log.debug("sentry alert report failed", exc_info=True)
