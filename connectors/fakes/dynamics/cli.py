"""``python -m connectors.fakes.dynamics``: the fake Dataverse and its Entra ID token endpoint
on a port of their own (``/{tenant}/oauth2/v2.0/token`` and ``/api/data/v9.2/...``)."""

from __future__ import annotations

import os

from connectors.fakes.dynamics.app import FakeDynamics
from connectors.fakes.dynamics.state import Config
from connectors.fakes.server import base_url, cli_parser, listen, serve


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    env = os.environ.get
    defaults = Config()
    parser = cli_parser("A faithful fake Dynamics 365 (Dataverse Web API) for crmhub.", 8930, prog)
    parser.add_argument(
        "--tenant",
        default=env("FAKE_DYNAMICS_TENANT", defaults.tenant),
        help="the Entra ID tenant in the token URL [env FAKE_DYNAMICS_TENANT]",
    )
    parser.add_argument(
        "--client-id",
        default=env("FAKE_DYNAMICS_CLIENT_ID", defaults.client_id),
        help="the app registration's client id [env FAKE_DYNAMICS_CLIENT_ID]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_DYNAMICS_CLIENT_SECRET", defaults.client_secret),
        help="its client secret [env FAKE_DYNAMICS_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--token-seconds",
        type=int,
        default=defaults.token_seconds,
        help=f"access token lifetime (expires_in) [{defaults.token_seconds}]",
    )
    args = parser.parse_args(argv)
    config = Config(
        tenant=args.tenant,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_seconds=args.token_seconds,
    )
    app = FakeDynamics(config)
    server = listen(app, args.host, args.port, args.verbose)
    # the environment's URL is the server's own: the token scope is `{url}/.default`
    app.state.config.url = app.state.initial.url = base_url(server)
    return serve(server)
