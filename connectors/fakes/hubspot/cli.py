"""``python -m connectors.fakes.hubspot``: the fake HubSpot on a port of its own."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.fakes.hubspot.app import FakeHubSpot
from connectors.fakes.hubspot.config import Config
from connectors.fakes.hubspot.schemas import SCHEMA_FILE
from connectors.fakes.server import base_url, cli_parser, listen, serve


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    env = os.environ.get
    parser = cli_parser("A faithful fake HubSpot API for crmhub.", 8910, prog)
    parser.add_argument(
        "--client-id",
        default=env("FAKE_HUBSPOT_CLIENT_ID", "fake-client-id"),
        help="the OAuth app's client id [env FAKE_HUBSPOT_CLIENT_ID, fake-client-id]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_HUBSPOT_CLIENT_SECRET", "fake-client-secret"),
        help="the OAuth app's client secret [env FAKE_HUBSPOT_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--refresh-token",
        default=env("FAKE_HUBSPOT_REFRESH_TOKEN", "fake-refresh-token"),
        help="the initially valid refresh token [env FAKE_HUBSPOT_REFRESH_TOKEN]",
    )
    parser.add_argument(
        "--private-app-token",
        default=env("FAKE_HUBSPOT_PRIVATE_APP_TOKEN") or None,
        help="also accept this static private-app token [env FAKE_HUBSPOT_PRIVATE_APP_TOKEN]",
    )
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=1800,
        help="access token lifetime in seconds, expires_in [1800]",
    )
    parser.add_argument(
        "--rotate-refresh-tokens",
        action="store_true",
        help="each refresh issues a new refresh token and invalidates the old one",
    )
    parser.add_argument(
        "--ten-secondly",
        type=int,
        default=190,
        help="requests per rolling 10 s, 0 = unlimited [190: Professional/Enterprise private apps]",
    )
    parser.add_argument(
        "--daily-limit",
        type=int,
        default=1_000_000,
        help="private-app requests per day, 0 = unlimited [1000000]",
    )
    parser.add_argument(
        "--search-per-second",
        type=int,
        default=5,
        help="search requests per second, 0 = unlimited [5]",
    )
    parser.add_argument(
        "--portal-id", type=int, default=12345678, help="the account (hub) id [12345678]"
    )
    parser.add_argument(
        "--app-id", type=int, default=1234567, help="the app id in groupName [1234567]"
    )
    parser.add_argument(
        "--custom-property",
        action="append",
        default=[],
        metavar="OBJECT:NAME[:TYPE][:unique]",
        help="add a property, e.g. contacts:customer_id:string:unique (repeatable)",
    )
    parser.add_argument(
        "--schemas", default=str(SCHEMA_FILE), help="the schema file [the one it ships]"
    )
    args = parser.parse_args(argv)

    config = Config(
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        private_app_token=args.private_app_token,
        token_ttl=args.token_ttl,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
        ten_secondly=args.ten_secondly,
        daily_limit=args.daily_limit,
        search_per_second=args.search_per_second,
        portal_id=args.portal_id,
        app_id=args.app_id,
    )
    try:
        app = FakeHubSpot(
            config, custom_properties=args.custom_property, schemas=Path(args.schemas)
        )
    except ValueError as exc:
        parser.error(str(exc))
    server = listen(app, args.host, args.port, args.verbose)
    app.api.base_url = base_url(server)  # the Location of a created record
    return serve(server)
