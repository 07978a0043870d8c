"""The explicit registry of connectors, by the name a connection's `connector:` uses."""

from __future__ import annotations

from connectors.base import Connector
from connectors.dynamics import DynamicsConnector
from connectors.http import HttpConnector
from connectors.hubspot import HubSpotConnector
from connectors.pipedrive import PipedriveConnector
from connectors.quickbooks import QuickBooksConnector
from connectors.salesforce import SalesforceConnector
from connectors.zoho import ZohoConnector

CONNECTORS: dict[str, type[Connector]] = {
    HttpConnector.name: HttpConnector,
    DynamicsConnector.name: DynamicsConnector,
    HubSpotConnector.name: HubSpotConnector,
    SalesforceConnector.name: SalesforceConnector,
    ZohoConnector.name: ZohoConnector,
    PipedriveConnector.name: PipedriveConnector,
    QuickBooksConnector.name: QuickBooksConnector,
}
