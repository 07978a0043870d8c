"""What a fake Salesforce is started with: its command line's options, or keyword arguments
when a test builds one in-process (``FakeSalesforce(daily_limit=100)``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    client_id: str = "fake-sf-client-id"
    client_secret: str = "fake-sf-client-secret"
    refresh_token: str = "fake-sf-refresh-token"
    #: client credentials flow enabled (a run-as user set on the app)
    client_credentials: bool = True
    #: where calls go after login (the token answer's instance_url); the server sets its own
    instance_url: str = "https://fake.my.salesforce.com"
    #: session timeout (no expires_in is sent; Salesforce's default is two hours)
    session_seconds: int = 7200
    rotate_refresh_tokens: bool = False
    #: the org's API requests per rolling 24 h (Sforce-Limit-Info's denominator); 0 = unlimited
    daily_limit: int = 100_000
    org_id: str = "00D5g000000FakeEAA"
    user_id: str = "0055g000000FakeAAA"
