"""What a fake Zoho CRM is started with: its command line's options, or keyword arguments
when a test builds one in-process (``FakeZoho(credits=100)``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    client_id: str = "1000.FAKEZOHOCLIENT"
    client_secret: str = "fake-zoho-client-secret"
    refresh_token: str = "1000.fake-zoho-refresh-token"
    #: where calls go after a refresh (the token answer's api_domain); the server sets its own
    api_domain: str = "https://www.zohoapis.com"
    #: access tokens live this long (Zoho: an hour, the answer's expires_in)
    token_seconds: int = 3600
    #: API credits per rolling 24 hours; then 429 LIMIT_EXCEEDED; 0 = unlimited
    credits: int = 0
    #: access tokens one refresh token may mint per 10 minutes (Zoho: 10); 0 = unlimited
    tokens_per_ten_minutes: int = 0
    user_id: str = "5725767000000411001"
    user_name: str = "Patricia Boyle"
