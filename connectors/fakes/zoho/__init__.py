"""A faithful fake of Zoho CRM (REST API v8) and its accounts server, for crmhub's Zoho
connector.

``python -m connectors.fakes.zoho --port N`` (or ``crmhub fake zoho``; ``--port 0`` picks a
free port, told by the one line it prints: ``fake zoho listening on URL``); in-process:
``FakeTransport(FakeZoho(...))``. Standard library only, state in memory behind one lock.
Both of Zoho's hosts live on one app, told apart by path (the token answer's ``api_domain`` is
the fake's own address):

* Accounts: ``POST /oauth/v2/token`` (form ``grant_type=refresh_token``, ``client_id``,
  ``client_secret``, ``refresh_token``) -> 200 ``{access_token, scope, api_domain,
  token_type, expires_in: 3600}``; every refusal is **HTTP 200** too: ``{"error":
  "invalid_code"}`` for a revoked or unknown refresh token, ``invalid_client`` for a wrong
  client, "Access Denied" past ``--tokens-per-ten-minutes``.
* CRM: ``POST /crm/v8/{module}/upsert`` and ``POST /crm/v8/{module}`` (up to 100 records,
  results per record in order: 200 / 201, 207 mixed, 400 all refused), ``GET
  /crm/v8/{module}?ids=..&fields=..``, the list a polling source pages (``GET
  /crm/v8/{module}?fields=..&sort_by=Modified_Time&sort_order=asc&page=..`` or ``page_token``,
  ``If-Modified-Since``; 204 / 304; ``listing.py``), ``GET /crm/v8/{module}/{id}``, ``GET
  /crm/v8/{module}/search?criteria=(Email:equals:x)or(...)`` (204 when nothing matches), for
  the modules Contacts, Accounts and Leads (``layout.py``: types, lengths, mandatory fields,
  lookups, picklists). Requests carry ``Authorization: Zoho-oauthtoken <token>``; a missing,
  expired or unknown token: 401 ``{"code": "INVALID_TOKEN", "details": {}, "message":
  "invalid oauth token", "status": "error"}``.
* Every CRM request is checked against Zoho's official OpenAPI documents (``spec/``, trimmed
  from zoho/crm-oas v8.0, with source and licence in spec/SOURCE.md; ``openapi.py``): what
  does not fit is recorded as a violation (``GET /_control/violations``), as are values of
  fields the org does not have.
* API credits: each call costs one; past ``--credits`` (rolling 24 h, 0 = unlimited): 429
  ``LIMIT_EXCEEDED``.

Control API under ``/_control``: ``health``, ``faults`` (modes ``error5xx``, ``latency``,
``drop``, ``rate_limit`` (429 TOO_MANY_REQUESTS; ``retry_after`` adds the hint), ``credits``,
``token_throttle``, and the immediate ``expire_tokens`` and ``revoke_refresh_token``),
``refresh-token`` (POST ``{refresh_token}``: the one valid refresh token, as after
re-authorising), ``limits`` (GET/POST ``credits``, ``credits_used``, ``token_seconds``,
``tokens_per_ten_minutes``), ``records`` (GET ``?module=Contacts``; POST ``{module,
...fields}`` adds a record as a rep would; a list of them adds, or edits those with an ``id``,
in one request), ``log``, ``stats`` (``api_calls`` for the bench), ``violations``, ``reset``.

Modules: ``app`` (the application object, control routes), ``api`` (hosts, routing, faults,
tokens, credits), ``records`` (the operations), ``listing`` (the list), ``layout`` (the org's
fields and checks), ``openapi`` (the request check against ``spec/``), ``state``, ``faults``,
``texts`` (Zoho's answers), ``config``, ``cli``. Facts marked [observed] come from captures in
public client code, [unconfirmed] ones are the fake's guess (crm-apis.md 3 and its list at the
end).
"""

from connectors.fakes.zoho.app import FakeZoho
from connectors.fakes.zoho.cli import main
from connectors.fakes.zoho.config import Config

__all__ = ["Config", "FakeZoho", "main"]
