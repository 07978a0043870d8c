"""``python -m connectors.fakes.salesforce``: the fake Salesforce on a port of its own."""

from __future__ import annotations

import os

from connectors.fakes.salesforce.app import FakeSalesforce
from connectors.fakes.salesforce.config import Config
from connectors.fakes.server import base_url, cli_parser, listen, serve


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    env = os.environ.get
    parser = cli_parser("A faithful fake Salesforce REST API for crmhub.", 8920, prog)
    parser.add_argument(
        "--client-id",
        default=env("FAKE_SALESFORCE_CLIENT_ID", "fake-sf-client-id"),
        help="the connected app's consumer key [env FAKE_SALESFORCE_CLIENT_ID]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_SALESFORCE_CLIENT_SECRET", "fake-sf-client-secret"),
        help="the connected app's consumer secret [env FAKE_SALESFORCE_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--refresh-token",
        default=env("FAKE_SALESFORCE_REFRESH_TOKEN", "fake-sf-refresh-token"),
        help="the initially valid refresh token [env FAKE_SALESFORCE_REFRESH_TOKEN]",
    )
    parser.add_argument(
        "--session-seconds",
        type=int,
        default=7200,
        help="session timeout: access tokens stop working after it [7200]",
    )
    parser.add_argument(
        "--rotate-refresh-tokens",
        action="store_true",
        help="each refresh issues a new refresh token and invalidates the old one",
    )
    parser.add_argument(
        "--no-client-credentials",
        action="store_true",
        help="refuse the client credentials flow (no run-as user)",
    )
    parser.add_argument(
        "--daily-limit",
        type=int,
        default=100_000,
        help="API requests per 24 h; then 403 REQUEST_LIMIT_EXCEEDED, 0 = unlimited [100000]",
    )
    args = parser.parse_args(argv)
    config = Config(
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        session_seconds=args.session_seconds,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
        client_credentials=not args.no_client_credentials,
        daily_limit=args.daily_limit,
    )
    app = FakeSalesforce(config)
    server = listen(app, args.host, args.port, args.verbose)
    app.state.config.instance_url = app.state.initial.instance_url = base_url(server)
    return serve(server)
