"""A faithful fake of the Pipedrive API v2 crmhub's Pipedrive connector uses.

``python -m connectors.fakes.pipedrive --port N`` (or ``crmhub fake pipedrive``; ``--port 0``
picks a free port, told by the one line it prints: ``fake pipedrive listening on URL``);
in-process: ``FakeTransport(FakePipedrive(...))``. Standard library only, state in memory
behind one lock.

* Auth: the ``x-api-token`` header (or the legacy ``?api_token=``), or an OAuth bearer token
  from ``POST /oauth/token`` (form-encoded, client authentication by HTTP Basic,
  ``grant_type=refresh_token``) -> 200 ``{access_token, token_type, expires_in: 3600,
  refresh_token, scope, api_domain}`` (``api_domain``: the server's own URL). A refused grant
  is 400 "Invalid grant: refresh_token is invalid"; an unknown API token 401 ``unauthorized
  access``; an expired access token 401 "Invalid token: ...".
* ``POST /api/v2/{persons|organizations}``, ``GET|PATCH /api/v2/{object}/{id}``,
  ``GET /api/v2/{object}/search?term=&fields=&exact_match=`` (not case sensitive, cursor
  pages): answers in API v2's shapes, ``{"success": true, "data": ..., "additional_data"}``.
* ``GET /api/v2/{object}?updated_since=&updated_until=&sort_by=&sort_direction=&limit=&cursor=``:
  the list a polling source pages (``listing.py``), ``additional_data.next_cursor``.
* Every request is checked against the official OpenAPI document (``spec/``: parameters and
  body schemas; v2 coerces nothing): a request Pipedrive would refuse for its shape is
  answered 400 in Pipedrive's envelope and recorded as a violation. A person needs a name
  ("Name must be given."), a list at most one primary item, ``org_id`` an organization.
* Every API answer carries ``x-ratelimit-limit|remaining|reset`` (the 2-second burst window)
  and ``x-daily-ratelimit-token-limit|remaining``: each request costs its operation's
  ``x-token-cost`` from the company's daily budget (``--daily-tokens``); past it, or past
  ``--burst-limit`` requests in 2 s, 429.
* Errors are Pipedrive's envelope ``{success: false, error, error_info, data: null,
  additional_data: null}`` (``texts.py``).

Control API under ``/_control``: ``health``, ``faults`` (modes ``error5xx``, ``latency``,
``drop``, ``rate_limit`` (with or without ``retry_after``), and the immediate
``expire_tokens``, ``revoke_api_token`` and ``revoke_refresh_token``), ``api-token`` (POST
``{api_token}``: the one valid API token, as after rotating it), ``refresh-token`` (POST
``{refresh_token}``), ``limits`` (GET/POST ``daily_tokens``, ``tokens_used``, ``burst_limit``,
``token_seconds``), ``records`` (GET ``?object=persons``; POST ``{object, ...fields}`` adds a
record as a rep would; a list of them adds, or edits those with an ``id``, in one request),
``log``, ``stats`` (``api_calls``: every API request, the bench's count), ``violations``,
``reset``.

Modules: ``app``, ``api`` (routing; faults, credentials, limits and the spec check before an
operation; OAuth), ``records`` (the operations), ``listing`` (the list), ``spec`` (the document
and its validator), ``state``, ``faults``, ``texts`` (Pipedrive's answers), ``config``,
``cli``. Facts marked [observed] come from captures in public client code, [unconfirmed] ones
are the fake's guess.
"""

from connectors.fakes.pipedrive.app import FakePipedrive
from connectors.fakes.pipedrive.cli import main
from connectors.fakes.pipedrive.config import Config

__all__ = ["Config", "FakePipedrive", "main"]
