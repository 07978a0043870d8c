"""What a fake HubSpot is started with: its command line's options, or keyword arguments when a
test builds one in-process (``FakeHubSpot(private_app_token="pat-x")``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"
    refresh_token: str = "fake-refresh-token"
    private_app_token: str | None = None
    token_ttl: int = 1800  # seconds, the token answer's expires_in
    rotate_refresh_tokens: bool = False
    ten_secondly: int = 190  # 0 = unlimited; 190: Professional/Enterprise private apps
    daily_limit: int = 1_000_000  # private-app requests per day, 0 = unlimited
    search_per_second: int = 5  # 0 = unlimited
    portal_id: int = 12345678
    app_id: int = 1234567
