"""A faithful fake of the HubSpot APIs crmhub's HubSpot connector uses: OAuth token refresh and
the v3 CRM object endpoints for contacts, companies and deals.

``crmhub serve --demo``, the integration tests and the benchmark run it as
``python -m connectors.fakes.hubspot --port N`` (``--port 0`` picks a free port, which the one
line it prints on start tells: ``fake hubspot listening on http://HOST:PORT``); unit tests run
``FakeHubSpot`` in-process behind ``connectors.fakes.transport.FakeTransport``. Standard library
only (the HTTP side is ``connectors/fakes/server.py``), all state in memory behind one lock.

Every request is checked against HubSpot's official request schemas, which ship beside this
file in ``schemas.json`` (extracted from HubSpot's OpenAPI specs, with the source and each
deliberate deviation documented there). A request HubSpot would refuse for its shape (wrong
Content-Type, body that is not JSON, a missing required field, a wrong type, more than 100 batch
inputs, duplicate batch ids, an upsert without ``idProperty``, an unknown route) is answered the
way HubSpot answers it *and* recorded in ``GET /_control/violations``, so a test can assert that a
client never sent one. Property *value* errors (unknown property, bad date, bad option) are
answered like HubSpot but are data errors, not violations.

API (``{object}`` is ``contacts``, ``companies`` or ``deals``; ``contact``, ``company``, ``deal``,
``0-1``, ``0-2``, ``0-3`` work too):

* ``POST /oauth/v1/token`` (form: grant_type=refresh_token, client_id, client_secret,
  refresh_token) -> 200 ``{"token_type":"bearer","refresh_token","access_token","expires_in"}``;
  400 ``{"status":"BAD_CLIENT_ID"|"BAD_CLIENT_SECRET"|"BAD_GRANT_TYPE"|"BAD_AUTH_CODE"|
  "BAD_REFRESH_TOKEN","message":...,"correlationId","requestId"}``; 415 for a non-form body.
* ``POST /crm/v3/objects/{object}`` -> 201 + Location; 409 CONFLICT on a duplicate contact email.
* ``GET /crm/v3/objects/{object}`` (limit, after, properties), ``GET|PATCH|DELETE
  /crm/v3/objects/{object}/{id}`` (``idProperty``, ``properties``).
* ``POST /crm/v3/objects/{object}/search`` (filterGroups/filters, query, sorts, limit, after).
* ``POST /crm/v3/objects/{object}/batch/{upsert|read|create|update|archive}``.

Every ``/crm`` request needs ``Authorization: Bearer <token>``: an access token from the token
endpoint (expires after ``--token-ttl`` seconds) or the ``--private-app-token``. Authenticated
``/crm`` answers carry HubSpot's ``X-HubSpot-RateLimit-*`` headers; the ten-secondly limit
(``--ten-secondly``), the daily limit of private apps (``--daily-limit``) and the search limit
(``--search-per-second``) really answer 429 with HubSpot's body when exceeded.

Control API (never rate limited, faulted or auth-checked) under ``/_control``:

* ``GET  /_control/health`` -> ``{"ok": true}``
* ``POST /_control/faults`` with one spec or a list -> 201 ``{"added","applied","faults"}``. A spec
  is ``{"mode": ..., "count": N, "seconds": T, "ratio": r, "seed": s, "status": 5xx,
  "latency_ms": ms, "retry_after": secs, "methods": [...], "objects": [...], "endpoints": [...],
  "message": text}``. Modes: ``error5xx``, ``latency``, ``drop`` (close without answering),
  ``rate_limit_burst`` (429 TEN_SECONDLY_ROLLING), ``rate_limit_daily`` (429 DAILY), and the
  immediate ``expire_tokens`` (every access token issued so far expires now) and
  ``revoke_refresh_token`` (every valid refresh token stops working). Faults apply to ``/crm``
  requests unless ``endpoints`` names others (``"oauth.token"``, ``"contacts.batch_upsert"``,
  a prefix such as ``"contacts"``, or ``"*"``).
* ``GET /_control/faults``; ``DELETE /_control/faults`` clears them.
* ``POST /_control/refresh-token`` ``{"refresh_token": t}`` (or ``{}`` for a new one) makes t the
  one valid refresh token, as after re-authorising the app -> ``{"refresh_token": t}``.
* ``GET /_control/auth`` -> valid refresh tokens and issued access tokens with their expiry.
* ``GET|POST /_control/limits`` -> read or change ``ten_secondly``, ``daily``,
  ``search_per_second``, ``token_ttl`` at run time.
* ``GET /_control/records[?object=contacts]`` -> every stored record with all its properties.
* ``GET /_control/log?since=N&limit=M`` -> ``{"entries", "last_seq"}``; an entry is ``{"seq",
  "time", "method", "path", "query", "endpoint", "object", "status", "body", "fault", "auth"}``.
* ``GET /_control/stats`` -> counts per endpoint and status, ``api_calls``, token refreshes, 429s...
* ``GET /_control/violations`` -> ``{"violations": [...], "count": n}``.
* ``POST /_control/reset`` -> clears records, log, counters, faults, violations and rate windows,
  and restores the command-line limits and refresh token (issued access tokens stay as they are).

Sources (each also cited where it is used):

* [SPEC] HubSpot's OpenAPI specs, github.com/HubSpot/HubSpot-public-api-spec-collection:
  PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json,
  PublicApiSpecs/CRM/Companies/Rollouts/424/v3/companies.json,
  PublicApiSpecs/Auth/Oauth/Rollouts/155908/v1/oauth.json.
* [ERRORS] https://developers.hubspot.com/docs/api-reference/error-handling (error fields,
  multi-status batch errors with objectWriteTraceId).
* [LIMITS] https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines,
  https://developers.hubspot.com/changelog/increasing-our-api-limits (190 per 10 s for
  Professional/Enterprise private apps), https://developers.hubspot.com/changelog/
  rate-limit-headers-will-now-appear-for-oauth-authenticated-calls (no Daily headers for OAuth).
* Captured real responses quoted in public code and threads, cited inline as [CAPTURE ...].

Known guesses and deviations (everything else follows a source above): the texts of
BAD_CLIENT_SECRET/BAD_GRANT_TYPE/BAD_AUTH_CODE, of the 100-input batch limit, of a non-date value
in a date property, of a non-unique idProperty and of 405/415 answers; the line/column in
"Invalid input JSON" messages (always line 1, column 2); which properties create/update/upsert
return (all stored ones, sorted); 409 for a PATCH or upsert that takes another record's unique
value; no Retry-After on 429 (HubSpot sends none for these policies); search is immediately
consistent (HubSpot's index lags by seconds); no scopes (no 403 MISSING_SCOPES); one account; the
daily window never rolls over by itself (``/_control/reset`` or ``/_control/limits``).

Modules: ``app`` (the application object), ``api`` (routing, faults, auth and limits before an
operation), ``objects``, ``search`` and ``batch`` (the operations), ``checks`` (schema, batch
and idProperty checks), ``properties`` (property values), ``schemas``, ``auth``, ``limits``,
``records``, ``state``, ``faults``, ``texts`` (HubSpot's answers, word for word), ``cli``.
"""

from connectors.fakes.hubspot.app import FakeHubSpot
from connectors.fakes.hubspot.cli import main
from connectors.fakes.hubspot.config import Config

__all__ = ["Config", "FakeHubSpot", "main"]
