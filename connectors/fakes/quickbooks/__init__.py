"""A faithful fake of the QuickBooks Online Accounting API as crmhub's quickbooks connector uses
it: reads of entities by id, and Intuit's OAuth 2.0 token endpoint.

``python -m connectors.fakes.quickbooks --port N`` (or ``crmhub fake quickbooks``; ``--port 0``
picks a free port, told by the one line it prints: ``fake quickbooks listening on URL``);
in-process: ``FakeTransport(FakeQuickBooks(...))``. Standard library only.

* OAuth: ``POST /oauth2/v1/tokens/bearer`` with the app's credentials as HTTP Basic and the
  form ``grant_type=refresh_token&refresh_token=...`` -> 200 ``{token_type: "bearer",
  expires_in: 3600, refresh_token, x_refresh_token_expires_in: 8726400, access_token}``; a
  refresh token it does not know: 400 ``{"error": "invalid_grant"}``; credentials missing or
  wrong: 401 ``{"error": "invalid_client"}``
  (https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0,
  steps 5 and "Refresh the access token"). ``--rotate-refresh-tokens``: each refresh issues a
  new refresh token and the old one stops working (Intuit rotates them at least daily).
* ``GET /v3/company/{realmId}/{entity}/{id}?minorversion=N`` (entity lower-case: invoice,
  payment, customer...) -> 200 ``{"Invoice": {...}, "time": "..."}``
  (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice,
  "Read an invoice"); an id it does not hold: 400 ``ValidationFault`` code 610 "Object Not
  Found"; a token it did not issue: 401 ``AuthenticationFailed`` code 3200; another company's
  realmId: 403 ``ApplicationAuthorizationFailed`` code 3100
  (https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes).
* Faults (``/_control/faults``): ``error5xx``, ``throttle`` (429 ``ThrottleExceeded`` code
  003001), ``revoke_refresh_token`` (immediate: every refresh token stops working),
  ``expire_tokens`` (immediate: every access token stops working).

Control API under ``/_control``: ``health``, ``faults``, ``records`` (GET ``?entity=Invoice``;
POST ``{entity, Id?, ...fields}`` adds or replaces a record as the company's bookkeeper would,
``MetaData.LastUpdatedTime`` set), ``log``, ``stats``, ``reset``.
"""

from connectors.fakes.quickbooks.app import FakeQuickBooks
from connectors.fakes.quickbooks.cli import main

__all__ = ["FakeQuickBooks", "main"]
