"""``python -m connectors.fakes.zoho``: the fake Zoho CRM (accounts server and CRM API on one
port) for crmhub."""

from __future__ import annotations

import os

from connectors.fakes.server import base_url, cli_parser, listen, serve
from connectors.fakes.zoho.app import FakeZoho
from connectors.fakes.zoho.config import Config


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    env = os.environ.get
    parser = cli_parser("A faithful fake Zoho CRM (v8) for crmhub.", 8930, prog)
    parser.add_argument(
        "--client-id",
        default=env("FAKE_ZOHO_CLIENT_ID", "1000.FAKEZOHOCLIENT"),
        help="the Self Client's client id [env FAKE_ZOHO_CLIENT_ID]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_ZOHO_CLIENT_SECRET", "fake-zoho-client-secret"),
        help="the Self Client's client secret [env FAKE_ZOHO_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--refresh-token",
        default=env("FAKE_ZOHO_REFRESH_TOKEN", "1000.fake-zoho-refresh-token"),
        help="the initially valid refresh token [env FAKE_ZOHO_REFRESH_TOKEN]",
    )
    parser.add_argument(
        "--token-seconds",
        type=int,
        default=3600,
        help="access tokens' life (the answer's expires_in) [3600]",
    )
    parser.add_argument(
        "--credits",
        type=int,
        default=0,
        help="API credits per rolling 24 h; then 429 LIMIT_EXCEEDED, 0 = unlimited [0]",
    )
    parser.add_argument(
        "--tokens-per-ten-minutes",
        type=int,
        default=0,
        help="access tokens a refresh token may mint per 10 minutes (Zoho: 10), then "
        "'Access Denied'; 0 = unlimited [0]",
    )
    args = parser.parse_args(argv)
    config = Config(
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        token_seconds=args.token_seconds,
        credits=args.credits,
        tokens_per_ten_minutes=args.tokens_per_ten_minutes,
    )
    app = FakeZoho(config)
    server = listen(app, args.host, args.port, args.verbose)
    # one app answers as both hosts: the token's api_domain is this server
    app.state.config.api_domain = app.state.initial.api_domain = base_url(server)
    return serve(server)
