"""The explicit registry of connectors, by the name a connection's `connector:` uses."""

from __future__ import annotations

from connectors.base import Connector
from connectors.http import HttpConnector
from connectors.hubspot import HubSpotConnector
from connectors.quickbooks import QuickBooksConnector
from connectors.salesforce import SalesforceConnector

CONNECTORS: dict[str, type[Connector]] = {
    HttpConnector.name: HttpConnector,
    HubSpotConnector.name: HubSpotConnector,
    SalesforceConnector.name: SalesforceConnector,
    QuickBooksConnector.name: QuickBooksConnector,
}
