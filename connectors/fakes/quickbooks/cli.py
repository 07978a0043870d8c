"""``python -m connectors.fakes.quickbooks``: the fake QuickBooks Online on a port of its own."""

from __future__ import annotations

import os

from connectors.fakes.quickbooks.app import FakeQuickBooks
from connectors.fakes.server import cli_parser, listen, serve


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    env = os.environ.get
    parser = cli_parser("A faithful fake QuickBooks Online Accounting API for crmhub.", 8930, prog)
    parser.add_argument(
        "--client-id",
        default=env("FAKE_QUICKBOOKS_CLIENT_ID", "fake-qbo-client-id"),
        help="the app's client id [env FAKE_QUICKBOOKS_CLIENT_ID]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_QUICKBOOKS_CLIENT_SECRET", "fake-qbo-client-secret"),
        help="the app's client secret [env FAKE_QUICKBOOKS_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--refresh-token",
        default=env("FAKE_QUICKBOOKS_REFRESH_TOKEN", "fake-qbo-refresh-token"),
        help="the initially valid refresh token [env FAKE_QUICKBOOKS_REFRESH_TOKEN]",
    )
    parser.add_argument(
        "--realm-id", default="9130350000000001", help="the company's realmId [9130350000000001]"
    )
    parser.add_argument(
        "--rotate-refresh-tokens",
        action="store_true",
        help="each refresh issues a new refresh token and invalidates the old one",
    )
    args = parser.parse_args(argv)
    app = FakeQuickBooks(
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        realm_id=args.realm_id,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
    )
    return serve(listen(app, args.host, args.port, args.verbose))
