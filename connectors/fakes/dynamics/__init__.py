"""A faithful fake of Dynamics 365 / Dataverse (Web API v9.2) and the Microsoft Entra ID token
endpoint crmhub's Dynamics connector uses, on one app (hosts by path).

``python -m connectors.fakes.dynamics --port N`` (or ``crmhub fake dynamics``; ``--port 0``
picks a free port, told by the one line it prints: ``fake dynamics listening on URL``);
in-process: ``FakeTransport(FakeDynamics(...))``. Standard library only, state in memory
behind one lock.

* Entra ID: ``POST /{tenant}/oauth2/v2.0/token`` (form: ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``, ``scope={url}/.default``) -> 200 ``{token_type,
  expires_in, ext_expires_in, access_token}``, no refresh token; refusals as Entra writes them
  (``invalid_client`` AADSTS7000215 a wrong secret, AADSTS7000222 an expired one,
  ``unauthorized_client`` AADSTS700016, ``invalid_scope`` AADSTS1002012). A token stops
  working after ``--token-seconds``: 401 with a bearer challenge.
* Dataverse under ``/api/data/v9.2``: ``GET /{set}`` (``$select``, ``$filter`` of ``col eq
  '..'`` joined by ``or``, ``$top``; or the changed-rows query a polling source pages,
  ``$filter=modifiedon ge ..``, ``$orderby``, ``Prefer: odata.maxpagesize``,
  ``@odata.nextLink``: ``listing.py``), ``GET /{set}({id})`` or ``({key}='..')``, ``POST
  /{set}``, ``PATCH /{set}({key}='..')`` upserting on an alternate key (``If-Match: *`` update
  only: 404 0x80060891; ``If-None-Match: *`` create only: 412 0x80040237; ``Prefer:
  return=representation``: 201 / 200 with the row, else 204 with ``OData-EntityId``),
  ``POST /$batch`` (multipart/mixed, change sets as transactions, ``Prefer:
  odata.continue-on-error``, up to 1,000 requests).
* Every write is checked against ``metadata.json`` (a CSDL-like description of contact and
  account: types, lengths, choices, alternate keys, navigation for ``@odata.bind``), failing
  with Dataverse's codes and messages (``texts.py``). Every answer carries ``OData-Version``
  and the ``x-ms-ratelimit-*`` headers.

Control API under ``/_control``: ``health``, ``faults`` (state.py lists the modes),
``credentials`` (POST ``{client_secret}``: a new secret, the credential valid again),
``records`` (GET ``?entity_set=contacts``; POST ``{entity_set, ...columns}`` adds a row as a
user would; a list of them adds, or edits those with an ``id``, in one request), ``log``,
``stats`` (``api_calls``: Dataverse requests, a $batch counting one; ``token_requests`` apart),
``violations`` (requests Dataverse would refuse for their shape), ``reset``.

Modules: ``app``, ``api`` (routing, faults, tokens, $batch), ``records`` (reads and writes),
``listing`` (the query), ``schema`` and ``metadata.json``, ``multipart``, ``state``, ``texts``,
``cli``. Sources are cited in each; [observed] facts come from captures in public issues,
[unconfirmed] ones are the fake's guess.
"""

from connectors.fakes.dynamics.app import FakeDynamics
from connectors.fakes.dynamics.cli import main
from connectors.fakes.dynamics.state import Config

__all__ = ["Config", "FakeDynamics", "main"]
