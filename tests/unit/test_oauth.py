"""OAuth2 for a connection (connectors/oauth.py, core/tokens.py, the retry in
connectors/base.py, `crmhub auth set-refresh-token`): tokens shared by every worker in Redis
(fakeredis), HubSpot's token endpoint and CRM API from the fake HubSpot the package ships
(connectors/fakes/hubspot/), in-process behind its httpx transport.

Where a test needs an answer the fake does not give by itself, a script answers instead; those
answers follow HubSpot's documentation, the source cited next to each one:
  [token]   POST /oauth/v1/token, form-encoded grant_type=refresh_token, client_id,
            client_secret, refresh_token; answer {access_token, refresh_token, expires_in,
            token_type}:
            https://developers.hubspot.com/docs/api-reference/auth-oauth-v1/tokens/post-oauth-v1-token
            and https://legacydocs.hubspot.com/docs/methods/oauth2/refresh-access-token
  [badrt]   400 {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}
            from the token endpoint: https://www.nango.dev/blog/hubspot-oauth-bad-refresh-token
            (HubSpot may also answer with the OAuth error code invalid_grant, RFC 6749 §5.2)
  [expired] 401 {"status": "error", "message": "The OAuth token used to make this call
            expired 5 minute(s) ago.", "category": "EXPIRED_AUTHENTICATION"}:
            https://useparagon.com/integration-error-solutions/hubspot-the-oauth-token-used-to-make-this-call-expired
  [errors]  401 INVALID_AUTHENTICATION and the common error body:
            https://developers.hubspot.com/docs/api-reference/error-handling
  [upsert]  batch upsert answer {status: COMPLETE, results: [{id, properties, new, ...}]}:
            https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import fakeredis
import httpx
import pytest
from click.testing import Result
from conftest import crmhub, hub_ledger, make_settings, text

from app.cli.common import EXIT_NOT_FOUND, CliContext
from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.transport import FakeTransport
from connectors.hubspot import TOKEN_URL, HubSpotConnector
from connectors.registry import CONNECTORS
from core.config import ConnectionConfig, load_config
from core.errors import AuthError, TransientError
from core.ledger import Ledger
from core.ledger.keys import LedgerKeys
from core.ledger.tokens import TokenState, TokenStore
from core.mapping.engine import FieldResult, MappedRecord
from workers.runtime import WorkerRuntime

API = "https://api.hubapi.com"
PREFIX = "crmhub-oauth-test"
ENV = {
    "HUBSPOT_CLIENT_ID": "5a7e2c1d-client-id",
    "HUBSPOT_CLIENT_SECRET": "client-secret-x",
    "HUBSPOT_REFRESH_TOKEN": "rt-from-env-0001",
}
AUTH = {
    "type": "oauth2",
    "client_id_env": "HUBSPOT_CLIENT_ID",
    "client_secret_env": "HUBSPOT_CLIENT_SECRET",
    "refresh_token_env": "HUBSPOT_REFRESH_TOKEN",
}
CORRELATION = "a43683b0-5717-4ceb-80b4-104d02915d8c"

# [expired]
EXPIRED = {
    "status": "error",
    "message": "The OAuth token used to make this call expired 5 minute(s) ago.",
    "correlationId": CORRELATION,
    "category": "EXPIRED_AUTHENTICATION",
}
# [errors]
INVALID = {
    "status": "error",
    "message": "Authentication credentials not found. This API "
    "supports OAuth 2.0 authentication and you can find more details at "
    "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    "correlationId": CORRELATION,
    "category": "INVALID_AUTHENTICATION",
}
# [badrt]
INVALID_GRANT = {"error": "invalid_grant", "error_description": "refresh token is revoked"}


class HubSpot:
    """The fake HubSpot in-process, its OAuth app the one of ENV; every request kept.

    `token_script` / `api_script`: consulted first for the token endpoint / the API; answer
    instead when they return a response.
    """

    def __init__(self, **config: Any) -> None:
        self.app = FakeHubSpot(
            client_id=ENV["HUBSPOT_CLIENT_ID"],
            client_secret=ENV["HUBSPOT_CLIENT_SECRET"],
            refresh_token=ENV["HUBSPOT_REFRESH_TOKEN"],
            **config,
        )
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.token_script: Callable[[httpx.Request], httpx.Response] | None = None
        self.api_script: Callable[[httpx.Request], httpx.Response | None] | None = None
        self._transport = FakeTransport(self.app)
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = str(request.url) == TOKEN_URL
        with self._lock:
            (self.token_requests if token else self.api_requests).append(request)
        script = self.token_script if token else self.api_script
        if script is not None and (answer := script(request)) is not None:
            return answer
        return self._transport.handle_request(request)

    def forms(self) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(r.content.decode()).items()} for r in self.token_requests
        ]

    def bearers(self) -> list[str]:
        return [
            r.headers.get("authorization", "").removeprefix("Bearer ") for r in self.api_requests
        ]

    def issued(self) -> list[str]:
        """The access tokens HubSpot issued, oldest first."""
        return self.app.access_tokens()


def connection() -> ConnectionConfig:
    return ConnectionConfig(name="hubspot", connector="hubspot", base_url=API, auth=AUTH)


def worker(fake: HubSpot, client: Any, environ: dict[str, str] | None = None) -> HubSpotConnector:
    """One worker's connector: its own HTTP client, the shared token store."""
    return HubSpotConnector(
        connection(),
        ENV if environ is None else environ,
        transport=httpx.MockTransport(fake),
        tokens=TokenStore(client, LedgerKeys(PREFIX)),
    )


def record(email: str = "ada@example.com") -> MappedRecord:
    return MappedRecord(
        mapping="m",
        connection="hubspot",
        object="contacts",
        action="upsert",
        match_field="email",
        match_value=email,
        fields=(FieldResult("firstname", "Ada", "Ada", "source"),),
    )


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


def store(client: Any) -> TokenStore:
    return TokenStore(client, LedgerKeys(PREFIX))


def seed(
    client: Any,
    access: str,
    *,
    left: float,
    lifetime: float = 1800.0,
    refresh: str = ENV["HUBSPOT_REFRESH_TOKEN"],
) -> None:
    """A token obtained `lifetime - left` seconds ago with `left` seconds to live."""
    now = time.time()
    store(client).save(
        "hubspot",
        TokenState(
            access_token=access,
            expires_at=now + left,
            refresh_token=refresh,
            obtained_at=now + left - lifetime,
        ),
    )


# obtaining and reusing ------------------------------------------------------------------
def test_first_use_refreshes_with_the_env_token_and_shares_the_result_in_redis(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    before = time.time()
    result = worker(fake, client).deliver(record())
    assert result.operation == "created"
    [form] = fake.forms()
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": ENV["HUBSPOT_REFRESH_TOKEN"],
        "client_id": ENV["HUBSPOT_CLIENT_ID"],
        "client_secret": ENV["HUBSPOT_CLIENT_SECRET"],
    }
    [issued] = fake.issued()
    assert fake.bearers() == [issued]
    raw = json.loads(text(client.get(f"{PREFIX}:conn:hubspot:oauth")))
    assert raw["access_token"] == issued
    assert raw["refresh_token"] == ENV["HUBSPOT_REFRESH_TOKEN"]
    assert before <= raw["obtained_at"] <= time.time()
    assert raw["expires_at"] == pytest.approx(raw["obtained_at"] + 1800)
    assert fake.app.violations() == []  # the token request as HubSpot wants it


def test_a_fresh_shared_token_is_used_without_a_refresh(client: fakeredis.FakeRedis) -> None:
    fake = HubSpot()
    fake.app.issue_token("CJSP-shared")
    seed(client, "CJSP-shared", left=1000)
    first, second = worker(fake, client), worker(fake, client)
    first.deliver(record("a@example.com"))
    second.deliver(record("b@example.com"))
    first.deliver(record("c@example.com"))
    assert fake.token_requests == []
    assert fake.bearers() == ["CJSP-shared"] * 3


@pytest.mark.parametrize(
    "lifetime, left, refreshes",
    [
        (1800, 1000, False),
        (1800, 200, False),  # more than a tenth (180 s) left
        (1800, 170, True),  # less than a tenth left, though more than a minute
        (300, 70, False),  # a short-lived token: the one-minute floor applies
        (300, 50, True),
        (1800, -5, True),  # already expired
    ],
)
def test_a_token_near_expiry_is_refreshed_before_use(
    client: fakeredis.FakeRedis, lifetime: float, left: float, refreshes: bool
) -> None:
    fake = HubSpot()
    fake.app.issue_token("CJSP-old")
    seed(client, "CJSP-old", left=left, lifetime=lifetime)
    worker(fake, client).deliver(record())
    assert len(fake.token_requests) == (1 if refreshes else 0)
    assert fake.bearers() == [fake.issued()[-1]]
    assert (fake.bearers() == ["CJSP-old"]) is not refreshes
    assert store(client).get("hubspot").access_token == fake.bearers()[0]


def test_two_workers_refreshing_at_once_make_one_token_request(
    server: fakeredis.FakeServer,
) -> None:
    fake = HubSpot()
    # a slow token endpoint: long enough for the other worker to arrive meanwhile
    fake.app.fault(mode="latency", latency_ms=300, endpoints=["oauth.token"])
    workers = [worker(fake, fakeredis.FakeRedis(server=server)) for _ in range(2)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(connector: HubSpotConnector, email: str) -> None:
        try:
            start.wait()
            connector.deliver(record(email))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(w, f"user{i}@example.com"))
        for i, w in enumerate(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(fake.token_requests) == 1
    assert fake.bearers() == fake.issued() * 2


# a 401 from the API ---------------------------------------------------------------------
def test_an_expired_token_is_refreshed_once_and_the_request_retried_once(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    # HubSpot says expired though we think not
    fake.app.issue_token("CJSP-revoked-early", expires_in=0)
    seed(client, "CJSP-revoked-early", left=1500)
    result = worker(fake, client).deliver(record())
    assert result.operation == "created"
    assert len(fake.token_requests) == 1
    new = fake.issued()[-1]
    assert fake.bearers() == ["CJSP-revoked-early", new]
    assert json.loads(fake.api_requests[0].content) == json.loads(fake.api_requests[1].content)
    assert store(client).get("hubspot").access_token == new


@pytest.mark.parametrize("answer", [EXPIRED, INVALID], ids=["expired", "invalid"])
def test_a_401_that_persists_after_the_refresh_is_an_auth_error(
    client: fakeredis.FakeRedis, answer: dict[str, str]
) -> None:
    fake = HubSpot()
    fake.api_script = lambda request: httpx.Response(401, json=answer)  # [expired], [errors]
    seed(client, "CJSP-a", left=1500)
    with pytest.raises(AuthError) as info:
        worker(fake, client).deliver(record())
    assert info.value.status == 401
    assert answer["category"] in info.value.excerpt
    assert len(fake.token_requests) == 1
    assert fake.bearers() == ["CJSP-a", *fake.issued()]


def test_a_token_hubspot_no_longer_knows_is_refreshed_once_and_the_request_retried_once(
    client: fakeredis.FakeRedis,
) -> None:
    """The demo restarted: the shared store still holds a token the new HubSpot never
    issued, which it answers with 401 INVALID_AUTHENTICATION [errors], not EXPIRED."""
    fake = HubSpot()
    seed(client, "CJSP-before-the-restart", left=1500)
    result = worker(fake, client).deliver(record())
    assert result.operation == "created"
    assert len(fake.token_requests) == 1
    assert fake.bearers() == ["CJSP-before-the-restart", *fake.issued()]
    assert json.loads(fake.api_requests[0].content) == json.loads(fake.api_requests[1].content)
    assert store(client).get("hubspot").access_token == fake.issued()[-1]


def test_a_plain_401_from_a_generic_oauth2_target_is_refreshed_once_and_retried_once(
    client: fakeredis.FakeRedis,
) -> None:
    """The generic http connector: a 401 with no body to read gets the same one refresh."""
    fake = HubSpot()
    seed(client, "stale-token", left=1500)

    def crm(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return fake(request)
        fake.api_requests.append(request)
        if request.headers["authorization"].removeprefix("Bearer ") not in fake.issued():
            return httpx.Response(401, text="Unauthorized")
        return httpx.Response(201, json=json.loads(request.content))

    conn = ConnectionConfig(
        name="hubspot",
        connector="http",
        base_url="https://crm.example",
        auth={**AUTH, "token_url": TOKEN_URL},
    )
    connector = CONNECTORS["http"](
        conn, ENV, transport=httpx.MockTransport(crm), tokens=store(client)
    )
    result = connector.deliver(record())
    assert (result.operation, result.status) == ("created", 201)
    assert len(fake.token_requests) == 1
    assert [(r.method, r.url.path) for r in fake.api_requests] == [
        ("PUT", "/contacts/ada@example.com")
    ] * 2
    assert fake.bearers() == ["stale-token", *fake.issued()]


def test_a_token_another_worker_already_replaced_is_used_without_a_refresh(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    fake.app.issue_token("CJSP-old", expires_in=0)
    fake.app.issue_token("CJSP-from-other-worker")
    seed(client, "CJSP-old", left=1500)

    def other_worker_refreshes_meanwhile(request: httpx.Request) -> None:
        if len(fake.api_requests) == 1:
            seed(client, "CJSP-from-other-worker", left=1800)
        return None

    fake.api_script = other_worker_refreshes_meanwhile
    worker(fake, client).deliver(record())
    assert fake.token_requests == []
    assert fake.bearers() == ["CJSP-old", "CJSP-from-other-worker"]


# the token endpoint refusing or failing -------------------------------------------------
@pytest.mark.parametrize("refusal", ["BAD_REFRESH_TOKEN", "invalid_grant"])
def test_a_refused_refresh_token_is_an_auth_error_telling_the_operator_what_to_run(
    client: fakeredis.FakeRedis, refusal: str
) -> None:
    fake = HubSpot()
    if refusal == "BAD_REFRESH_TOKEN":
        fake.app.fault(mode="revoke_refresh_token")  # the app's access was revoked
    else:  # the OAuth error code HubSpot may answer instead [badrt]
        fake.token_script = lambda request: httpx.Response(400, json=INVALID_GRANT)
    with pytest.raises(AuthError) as info:
        worker(fake, client).deliver(record())
    message = str(info.value)
    assert "crmhub auth set-refresh-token hubspot" in message
    assert info.value.status == 400
    assert ENV["HUBSPOT_REFRESH_TOKEN"] not in message + info.value.excerpt
    assert ENV["HUBSPOT_CLIENT_SECRET"] not in message + info.value.excerpt
    assert fake.api_requests == []


def test_without_any_refresh_token_the_operator_is_told_to_install_one(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    environ = {**ENV, "HUBSPOT_REFRESH_TOKEN": ""}
    with pytest.raises(AuthError, match="crmhub auth set-refresh-token hubspot"):
        worker(fake, client, environ).deliver(record())
    assert fake.token_requests == [] and fake.api_requests == []


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_token_endpoint_outage_is_transient(client: fakeredis.FakeRedis, status: int) -> None:
    fake = HubSpot()
    # [errors]: 5xx and 429 are "pause, then retry"
    if status == 429:  # the fake never limits its token endpoint
        fake.token_script = lambda request: httpx.Response(
            status,
            json={"status": "error", "message": "internal error", "correlationId": CORRELATION},
        )
    else:
        fake.app.fault(mode="error5xx", status=status, endpoints=["oauth.token"])
    with pytest.raises(TransientError) as info:
        worker(fake, client).deliver(record())
    assert info.value.status == status
    assert fake.api_requests == []
    assert store(client).get("hubspot").access_token == ""


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError])
def test_a_token_endpoint_timeout_is_transient(
    client: fakeredis.FakeRedis, exc: type[httpx.TransportError]
) -> None:
    fake = HubSpot()

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("no answer", request=request)

    fake.token_script = fail
    with pytest.raises(TransientError):
        worker(fake, client).deliver(record())
    assert fake.api_requests == []


def test_a_failed_refresh_does_not_hold_the_lock(client: fakeredis.FakeRedis) -> None:
    fake = HubSpot()
    fake.app.fault(mode="error5xx", status=503, count=1, endpoints=["oauth.token"])
    with pytest.raises(TransientError):
        worker(fake, client).deliver(record())
    started = time.monotonic()
    assert worker(fake, client).deliver(record()).operation == "created"
    assert time.monotonic() - started < 5  # not waiting out a stale lock


# refresh tokens -------------------------------------------------------------------------
def test_a_rotated_refresh_token_is_stored_and_used_for_the_next_refresh(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot(rotate_refresh_tokens=True)
    connector = worker(fake, client)
    connector.deliver(record())
    [rotated] = fake.app.refresh_tokens()
    assert rotated != ENV["HUBSPOT_REFRESH_TOKEN"]
    assert store(client).get("hubspot").refresh_token == rotated
    # the access token runs out; the next refresh must use the rotated refresh token (the
    # one from the environment is no longer valid)
    state = store(client).get("hubspot")
    store(client).save(
        "hubspot",
        TokenState(state.access_token, time.time() - 1, state.refresh_token, state.obtained_at),
    )
    worker(fake, client).deliver(record())
    assert [f["refresh_token"] for f in fake.forms()] == [ENV["HUBSPOT_REFRESH_TOKEN"], rotated]
    [again] = fake.app.refresh_tokens()
    assert again != rotated
    assert store(client).get("hubspot").refresh_token == again


def test_an_answer_without_a_refresh_token_keeps_the_current_one(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    fake.app.issue_token("CJSP-plain")
    # [token] with the refresh token left out
    fake.token_script = lambda request: httpx.Response(
        200, json={"access_token": "CJSP-plain", "expires_in": 1800, "token_type": "bearer"}
    )
    seed(client, "", left=-1, refresh="rt-installed")
    worker(fake, client).deliver(record())
    assert store(client).get("hubspot").refresh_token == "rt-installed"


def test_installing_a_refresh_token_clears_the_access_token_so_the_next_request_refreshes(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    fake.app.issue_token("CJSP-before")
    seed(client, "CJSP-before", left=1700, refresh="rt-revoked")
    fake.app.set_refresh_token("rt-reauthorised")  # the app re-authorised
    store(client).install_refresh_token("hubspot", "rt-reauthorised")
    state = store(client).get("hubspot")
    assert (state.access_token, state.refresh_token) == ("", "rt-reauthorised")
    worker(fake, client).deliver(record())
    assert [f["refresh_token"] for f in fake.forms()] == ["rt-reauthorised"]
    assert fake.bearers() == [fake.issued()[-1]]


# crmhub auth set-refresh-token ----------------------------------------------------------
CONFIG = """
sources:
  stripe: {verify: {scheme: stripe, secret_env: STRIPE_SECRET}, event_id: id}
connections:
  hubspot:
    connector: hubspot
    base_url: https://api.hubapi.com
    auth: {type: oauth2, client_id_env: HUBSPOT_CLIENT_ID,
           client_secret_env: HUBSPOT_CLIENT_SECRET, refresh_token_env: HUBSPOT_REFRESH_TOKEN}
  crm:
    connector: http
    base_url: https://crm.example.com/api
    auth: {type: bearer, token_env: CRM_TOKEN}
mappings:
  customer:
    source: stripe
    connection: hubspot
    object: contacts
    match: {field: email, from: data.object.email}
    fields: {firstname: data.object.name}
"""
SECRET = "rt-na1-9f8e7d6c-5b4a-3210-fedc-ba9876543210"


class Cli:
    def __init__(self, ctx: CliContext, ledger: Ledger, settings: Any) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.settings = settings

    def run(self, *args: str, stdin: str = "") -> Result:
        return crmhub(self.settings, *args, config=self.ctx.config, ledger=self.ledger, stdin=stdin)

    def tokens(self) -> TokenState:
        return TokenStore(self.ledger.redis, LedgerKeys(self.settings.key_prefix)).get("hubspot")


@pytest.fixture
def cli(write_config: Callable[..., Path], key_prefix: str) -> Iterator[Cli]:
    environ = {**ENV, "STRIPE_SECRET": "whsec_x", "CRM_TOKEN": "pat-x"}
    path = write_config(CONFIG)
    settings = make_settings(path, key_prefix, redis_url="redis://unused", **environ)
    config = load_config(path, settings.environ, connectors=CONNECTORS)
    ledger = hub_ledger(settings)
    yield Cli(CliContext(_settings=settings, _config=config, _ledger=ledger), ledger, settings)


def test_set_refresh_token_stores_the_token_from_stdin_without_echoing_it(cli: Cli) -> None:
    result = cli.run("auth", "set-refresh-token", "hubspot", stdin=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert SECRET not in (result.stderr or "")
    assert "hubspot" in result.output and "crmhub resume hubspot" in result.output
    state = cli.tokens()
    assert (state.refresh_token, state.access_token) == (SECRET, "")


def test_set_refresh_token_json_output_never_contains_the_token(cli: Cli) -> None:
    result = cli.run("auth", "set-refresh-token", "hubspot", "--json", stdin=f"  {SECRET}  \n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"connection": "hubspot", "refresh_token": "stored"}
    assert SECRET not in result.output
    assert cli.tokens().refresh_token == SECRET


def test_a_worker_uses_the_installed_refresh_token_on_its_next_request(cli: Cli) -> None:
    assert cli.run("auth", "set-refresh-token", "hubspot", stdin=SECRET + "\n").exit_code == 0
    rt = WorkerRuntime.build(cli.settings, config=cli.ctx.config, client=cli.ledger.redis)
    fake = HubSpot()
    fake.app.set_refresh_token(SECRET)
    rt._connectors["hubspot"] = HubSpotConnector(
        cli.ctx.config.connections["hubspot"],
        cli.settings.environ,
        transport=httpx.MockTransport(fake),
        tokens=rt.ledger.tokens,
    )
    rt.connector("hubspot").deliver(record())
    assert [f["refresh_token"] for f in fake.forms()] == [SECRET]


@pytest.mark.parametrize(
    "args, stdin, code, says",
    [
        (("nope",), SECRET + "\n", EXIT_NOT_FOUND, "no connection named 'nope'"),
        (("crm",), SECRET + "\n", 2, "does not use oauth2"),
        (("hubspot",), "\n", 2, "no refresh token given"),
    ],
)
def test_set_refresh_token_refuses_and_stores_nothing(
    cli: Cli, args: tuple[str, ...], stdin: str, code: int, says: str
) -> None:
    result = cli.run("auth", "set-refresh-token", *args, stdin=stdin)
    assert result.exit_code == code
    assert says in result.output
    assert SECRET not in result.output
    assert cli.tokens() == TokenState()


def test_waiting_too_long_for_another_workers_refresh_is_transient(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = HubSpot()
    key = f"{PREFIX}:conn:hubspot:oauth:lock"
    # another worker holds the refresh lock and does not let go (a hung token request)
    other = fakeredis.FakeRedis(server=server)
    assert other.lock(key, timeout=30).acquire(blocking=False)
    monkeypatch.setattr(
        TokenStore,
        "refresh_lock",
        lambda self, connection: self.redis.lock(key, timeout=30, blocking_timeout=0.2),
    )  # the real wait is 20 s
    with pytest.raises(TransientError, match="refresh"):
        worker(fake, client).deliver(record())
    assert fake.token_requests == [] and fake.api_requests == []


# credential_expiring: an early refresh that fails while the token still works ------------
def test_a_refused_early_refresh_keeps_the_working_token_and_is_recorded_for_alerting(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    fake.app.issue_token("CJSP-still-good")
    seed(client, "CJSP-still-good", left=100)  # under a tenth of its life: refreshed early
    fake.app.fault(mode="revoke_refresh_token")
    connector = worker(fake, client)
    connector.deliver(record("a@example.com"))
    connector.deliver(record("b@example.com"))
    assert fake.bearers() == ["CJSP-still-good"] * 2  # delivered: warn before, not pause
    failing = json.loads(text(client.get(f"{PREFIX}:conn:hubspot:oauth:failing")))
    assert failing["failures"] == 2 and "BAD_REFRESH_TOKEN" in failing["error"]
    assert failing["token_expires_at"] == pytest.approx(time.time() + 100, abs=5)

    # re-authorised: the next refresh succeeds and the record is gone
    fake.app.set_refresh_token("rt-new")  # the app re-authorised
    store(client).install_refresh_token("hubspot", "rt-new")
    connector.deliver(record("c@example.com"))
    assert client.get(f"{PREFIX}:conn:hubspot:oauth:failing") is None


def test_a_refused_refresh_with_an_expired_token_still_fails_the_delivery(
    client: fakeredis.FakeRedis,
) -> None:
    fake = HubSpot()
    seed(client, "CJSP-gone", left=-5)
    fake.app.fault(mode="revoke_refresh_token")
    with pytest.raises(AuthError):
        worker(fake, client).deliver(record())
    failing = json.loads(text(client.get(f"{PREFIX}:conn:hubspot:oauth:failing")))
    assert failing["failures"] == 1  # recorded, but it is the pause's, not a warning
