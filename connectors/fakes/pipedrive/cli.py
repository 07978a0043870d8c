"""``python -m connectors.fakes.pipedrive``: the fake Pipedrive on a port of its own."""

from __future__ import annotations

import os

from connectors.fakes.pipedrive.app import FakePipedrive
from connectors.fakes.pipedrive.config import Config
from connectors.fakes.server import base_url, cli_parser, listen, serve


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    env = os.environ.get
    parser = cli_parser("A faithful fake Pipedrive API v2 for crmhub.", 8930, prog)
    parser.add_argument(
        "--api-token",
        default=env("FAKE_PIPEDRIVE_API_TOKEN", "fake-pipedrive-api-token"),
        help="the company's valid API token (x-api-token) [env FAKE_PIPEDRIVE_API_TOKEN]",
    )
    parser.add_argument(
        "--client-id",
        default=env("FAKE_PIPEDRIVE_CLIENT_ID", "fake-pd-client-id"),
        help="the OAuth app's client id [env FAKE_PIPEDRIVE_CLIENT_ID]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_PIPEDRIVE_CLIENT_SECRET", "fake-pd-client-secret"),
        help="the OAuth app's client secret [env FAKE_PIPEDRIVE_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--refresh-token",
        default=env("FAKE_PIPEDRIVE_REFRESH_TOKEN", "fake-pd-refresh-token"),
        help="the initially valid refresh token [env FAKE_PIPEDRIVE_REFRESH_TOKEN]",
    )
    parser.add_argument(
        "--token-seconds",
        type=int,
        default=3600,
        help="OAuth access tokens stop working after this [3600]",
    )
    parser.add_argument(
        "--daily-tokens",
        type=int,
        default=10_000_000,
        help="the company's daily token budget (each request costs its x-token-cost) [10000000]",
    )
    parser.add_argument(
        "--burst-limit",
        type=int,
        default=0,
        help="requests per rolling 2 s window, then 429; 0 = none [0]",
    )
    args = parser.parse_args(argv)
    app = FakePipedrive(
        Config(
            api_token=args.api_token,
            client_id=args.client_id,
            client_secret=args.client_secret,
            refresh_token=args.refresh_token,
            token_seconds=args.token_seconds,
            daily_tokens=args.daily_tokens,
            burst_limit=args.burst_limit,
        )
    )
    server = listen(app, args.host, args.port, args.verbose)
    app.state.config.api_domain = app.state.initial.api_domain = base_url(server)
    return serve(server)
