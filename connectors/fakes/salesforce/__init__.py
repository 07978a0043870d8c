"""A faithful fake of the Salesforce REST API crmhub's Salesforce connector uses.

``python -m connectors.fakes.salesforce --port N`` (or ``crmhub fake salesforce``; ``--port 0``
picks a free port, told by the one line it prints: ``fake salesforce listening on URL``);
in-process: ``FakeTransport(FakeSalesforce(...))``. Standard library only, state in memory
behind one lock.

* OAuth: ``POST /services/oauth2/token`` (form: ``grant_type=refresh_token`` or
  ``client_credentials``, ``client_id``, ``client_secret``) -> 200 ``{access_token,
  instance_url, id, token_type, issued_at, signature, scope}`` with **no expires_in**; sessions
  stop working after ``--session-seconds`` (401 ``INVALID_SESSION_ID``); a refused grant is
  400 ``{"error": "invalid_grant", "error_description": "expired access/refresh token"}``.
* ``GET /services/data/vXX.X/query?q=SOQL`` for ``SELECT ... FROM ... WHERE f = '..' | f IN
  (...) [AND ...] [LIMIT n]`` (``soql.py``; case-insensitive, SOQL's escapes).
* ``POST /sobjects/{object}`` (201), ``GET|PATCH /sobjects/{object}/{id}`` (200 / 204),
  ``PATCH /sobjects/{object}/{externalIdField}/{value}`` (201 created / 200 updated with
  ``created``; 300 with the candidates' URLs when several match; 404 for a field that is not
  an External ID), ``GET /sobjects/{object}/describe``.
* sObject Collections: ``POST|PATCH /composite/sobjects`` and ``PATCH
  /composite/sobjects/{object}/{externalIdField}``: up to 200 records, ``allOrNone``, a result
  per record ``{id, success, errors: [{statusCode, message, fields}], created}``.
* Every write is checked against ``schemas.json`` (describe-like: types, lengths, required,
  restricted picklists, External ID fields, read-only fields, references) and the duplicate
  rule there (``DUPLICATES_DETECTED`` with its matches; the REST answer spells the key
  ``duplicateResut`` as real captures do, collections ``duplicateResult``).
* Every API answer carries ``Sforce-Limit-Info: api-usage=N/LIMIT``; past ``--daily-limit``
  requests: 403 ``REQUEST_LIMIT_EXCEEDED`` ``TotalRequests Limit exceeded.``.
* Errors are arrays of ``{message, errorCode, fields}`` (``texts.py``).

Control API under ``/_control``: ``health``, ``faults`` (modes ``error5xx``, ``latency``,
``drop``, ``row_lock``, ``request_limit``, ``validation_rule``, and the immediate
``expire_sessions`` and ``revoke_refresh_token``), ``refresh-token`` (POST ``{refresh_token}``:
the one valid refresh token, as after re-authorising), ``limits`` (GET/POST ``daily_limit``,
``api_used``, ``session_seconds``), ``records`` (GET ``?object=Contact``; POST ``{object,
...fields}`` adds a record as a rep would, ``{object, Id, ...}`` edits one), ``log``,
``stats``, ``violations`` (requests Salesforce would refuse for their shape), ``reset``.

Modules: ``app`` (the application object and its control routes), ``api`` (routing, faults,
sessions and the daily budget before an operation; OAuth), ``records`` (saves, SOQL, describe),
``collections`` (sObject Collections), ``describe`` and ``schemas.json`` (the field checks),
``soql``, ``state``, ``faults``, ``texts`` (Salesforce's answers), ``config``, ``cli``.

Sources are cited in each module; facts marked [observed] come from captures in public client
code, [unconfirmed] ones are the fake's guess.
"""

from connectors.fakes.salesforce.app import FakeSalesforce
from connectors.fakes.salesforce.cli import main
from connectors.fakes.salesforce.config import Config

__all__ = ["Config", "FakeSalesforce", "main"]
