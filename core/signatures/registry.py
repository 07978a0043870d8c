"""The explicit registry of webhook signature schemes: name -> scheme instance."""

from __future__ import annotations

from core.errors import CrmhubError
from core.signatures.base import Scheme
from core.signatures.calendly import CalendlyScheme
from core.signatures.docusign import DocuSignScheme
from core.signatures.github import GitHubScheme
from core.signatures.hmac_generic import HmacScheme
from core.signatures.hubspot import HubSpotScheme
from core.signatures.intercom import IntercomScheme
from core.signatures.none import NoneScheme
from core.signatures.quickbooks import QuickBooksScheme
from core.signatures.segment import SegmentScheme
from core.signatures.shopify import ShopifyScheme
from core.signatures.standard_webhooks import StandardWebhooksScheme, SvixScheme
from core.signatures.stripe import StripeScheme
from core.signatures.typeform import TypeformScheme
from core.signatures.zendesk import ZendeskScheme

SCHEMES: dict[str, Scheme] = {
    "standard_webhooks": StandardWebhooksScheme(),
    "svix": SvixScheme(),
    "stripe": StripeScheme(),
    "hubspot": HubSpotScheme(),
    "github": GitHubScheme(),
    "shopify": ShopifyScheme(),
    "zendesk": ZendeskScheme(),
    "intercom": IntercomScheme(),
    "typeform": TypeformScheme(),
    "calendly": CalendlyScheme(),
    "quickbooks": QuickBooksScheme(),
    "docusign": DocuSignScheme(),
    "segment": SegmentScheme(),
    "hmac": HmacScheme(),
    "none": NoneScheme(),
}


class UnknownScheme(CrmhubError, KeyError):
    """No signature scheme has that name (the configuration's schema refuses such a name
    first, so this is for code that looks one up itself)."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError would quote the message


def get_scheme(name: str) -> Scheme:
    """The scheme registered under `name`; UnknownScheme (a KeyError) naming the valid ones
    otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise UnknownScheme(
            f"unknown signature scheme {name!r}; expected one of: {', '.join(sorted(SCHEMES))}"
        ) from None
