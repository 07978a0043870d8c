"""What a fake Pipedrive is started with: its command line's options, or keyword arguments
when a test builds one in-process (``FakePipedrive(api_token="...")``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    #: the company's valid API token (the ``x-api-token`` header)
    api_token: str = "fake-pipedrive-api-token"
    client_id: str = "fake-pd-client-id"
    client_secret: str = "fake-pd-client-secret"
    refresh_token: str = "fake-pd-refresh-token"
    #: access tokens live an hour (expires_in 3600: crm-apis.md 2.1)
    token_seconds: int = 3600
    #: the token answer's api_domain (the company's own host); the server sets its own URL
    api_domain: str = "https://fake-company.pipedrive.com"
    #: the company's daily token budget (crm-apis.md 2.4: 30,000 x plan multiplier x seats)
    daily_tokens: int = 10_000_000
    #: requests per rolling 2-second window per token; 0 = no burst limit
    burst_limit: int = 0
