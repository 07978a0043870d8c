"""What every connector shares: HTTP with classified failures, auth headers, field ownership.

A connector turns a MappedRecord into a write at the target. Everything foreign (httpx
exceptions, status codes, vendor error bodies) is translated here into the hub's taxonomy:
TransientError, RateLimited, DataError, AuthError. Vendor modules override `classify` for
their quirks and keep the default table for the rest.
"""

from __future__ import annotations

import base64
import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from connectors.oauth import GRANTS, OAuth2Session
from core.changes import ChangePage, Stamp
from core.config.model import ConnectionConfig, MappingConfig
from core.config.polling import MAX_PAGE_SIZE, PollSpec
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.ledger.memo import Memo
from core.ledger.tokens import TokenStore
from core.mapping import MappedRecord
from core.mapping.empty import is_empty
from core.text import escaped
from core.vocabulary import DeadCategory

EXCERPT_CHARS = 500


@dataclass(frozen=True)
class WriteResult:
    operation: str  # created | updated | unchanged | skipped
    status: int | None = None
    record_id: str | None = None
    excerpt: str = ""
    skipped_fields: tuple[str, ...] = field(default=())
    written_fields: tuple[str, ...] = field(default=())


def excerpt(response: httpx.Response) -> str:
    try:
        body = response.text
    except UnicodeDecodeError:
        body = "<binary>"
    return body[:EXCERPT_CHARS]


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP-date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def default_classify(response: httpx.Response) -> None:
    """The default table (docs/architecture.md): 2xx ok; 408, 5xx transient; 429 rate limited;
    401/403 auth; any other 4xx (and a 3xx: redirects are not followed) is a data error."""
    status = response.status_code
    if status < 300:
        return
    text = excerpt(response)
    if status < 400:
        # redirects are not followed, so nothing was written: never count it as delivered
        location = response.headers.get("Location")
        raise DataError(
            f"target answered HTTP {status}, a redirect"
            f"{f' to {location}' if location else ''}; point the connection's "
            "base_url at the final address",
            category=DeadCategory.REJECTED_BY_TARGET,
            status=status,
            excerpt=text,
        )
    if status == 429:
        raise RateLimited(
            "rate limited by the target (HTTP 429)",
            status=status,
            retry_after=retry_after_seconds(response),
            excerpt=text,
        )
    if status == 408 or status >= 500:
        raise TransientError(
            f"target answered HTTP {status}",
            status=status,
            retry_after=retry_after_seconds(response),
            excerpt=text,
        )
    if status in (401, 403):
        raise AuthError(
            f"target refused our credentials (HTTP {status})", status=status, excerpt=text
        )
    raise DataError(
        f"target rejected the record (HTTP {status})",
        category=DeadCategory.REJECTED_BY_TARGET,
        status=status,
        excerpt=text,
    )


def unencodable(exc: UnicodeEncodeError, where: str) -> DataError:
    """Text UTF-8 cannot carry (a lone surrogate) in a request: the mapping engine rejects
    such values first; anything else of the record's is its data error too, never a bug to
    retry (and a batch that meets it falls back to isolate the record)."""
    return DataError(
        f"{where}: the record holds text that cannot be encoded as UTF-8 "
        f"({escaped(exc.object[exc.start : exc.end])}, a lone surrogate); fix the "
        "value at the source, then replay",
        category=DeadCategory.MAPPING,
    )


def static_auth_headers(auth: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Headers for the static auth types (bearer, basic, header); oauth2 is the connector's."""
    kind = auth.get("type", "none")
    if kind == "bearer":
        return {"Authorization": f"Bearer {environ.get(auth['token_env'], '')}"}
    if kind == "basic":
        pair = f"{environ.get(auth['username_env'], '')}:{environ.get(auth['password_env'], '')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if kind == "header":
        return {auth["header"]: environ.get(auth["value_env"], "")}
    return {}


class Connector(ABC):
    """One configured connection's writer. One instance per worker process and connection."""

    name: ClassVar[str]
    #: where OAuth2 refresh requests go unless the connection's auth sets token_url
    default_token_url: ClassVar[str] = ""
    #: how long a token answer without expires_in is used (until a 401 says otherwise)
    default_token_lifetime: ClassVar[float] = 1800.0
    #: how many records one request may carry (1: no batching)
    max_batch: ClassVar[int] = 1
    #: whether `list_changes` lists changed records (a polling source's connection), and the
    #: most records one listing request may ask for
    lists_changes: ClassVar[bool] = False
    max_list_page: ClassVar[int] = MAX_PAGE_SIZE
    #: how the OAuth2 client id and secret are sent to the token endpoint ("body" or "basic")
    token_client_auth: ClassVar[str] = "body"

    def __init__(
        self,
        connection: ConnectionConfig,
        environ: Mapping[str, str],
        *,
        transport: httpx.BaseTransport | None = None,
        tokens: TokenStore | None = None,
        memo: Memo | None = None,
    ) -> None:
        self.connection = connection
        self.environ = environ
        #: what this connector shares with the other workers (the ledger's; None in tests
        #: that do not need it)
        self.memo = memo
        self.client = httpx.Client(
            base_url=connection.base_url,
            timeout=connection.timeout_seconds,
            transport=transport,
            headers={"User-Agent": "crmhub/0.1", **self.auth_headers()},
        )
        self.oauth: OAuth2Session | None = None
        if connection.auth.get("type") in GRANTS:
            if tokens is None:
                raise TypeError("an oauth2 connection needs the shared token store (tokens=)")
            self.oauth = OAuth2Session(
                connection.name,
                connection.auth,
                environ,
                tokens,
                self.client,
                self.token_endpoint(),
                default_lifetime=self.default_token_lifetime,
                scope=self.token_scope(),
                client_auth=self.token_client_auth,
            )

    @classmethod
    def config_problems(
        cls, connection: ConnectionConfig, mappings: Sequence[MappingConfig]
    ) -> list[tuple[str, str]]:
        """This connector's own rules on a connection and the mappings writing to it, as
        (YAML key, message) pairs; the configuration's loader asks every connector."""
        return []

    @classmethod
    def poll_problems(cls, poll: PollSpec) -> list[tuple[str, str]]:
        """What this connector's list API cannot do of a polling source written this way, as
        (key under `sources.<s>.poll`, message) pairs; core/config/polling.py asks it."""
        return []

    def token_endpoint(self) -> str:
        """Where OAuth2 token requests go unless the connection's auth sets token_url."""
        return self.default_token_url

    def token_scope(self) -> str:
        """The `scope` a client-credentials token request names ("": none)."""
        return ""

    @property
    def batch_size(self) -> int:
        """Records per request for this connection (`options.batch_size`, capped)."""
        wanted = int(self.connection.options.get("batch_size", self.max_batch))
        return max(1, min(self.max_batch, wanted))

    def auth_headers(self) -> dict[str, str]:
        return static_auth_headers(self.connection.auth, self.environ)

    def classify(self, response: httpx.Response) -> None:
        """Raise the hub error this response means (vendor modules override)."""
        default_classify(response)

    def request(
        self, method: str, url: str, *, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """Send, translating transport failures and error statuses (except `ok` ones).

        With OAuth2, any 401 gets one forced token refresh and one more try before it
        counts: whatever the body says (expired, or a token the target no longer knows,
        as after a restart of the target's auth service), a new access token is the fix
        worth one request; only a 401 that outlives the refresh pauses the connection."""
        token = self.oauth.access_token() if self.oauth else None
        response = self._send(method, url, token, **kwargs)
        if response.status_code == 401 and self.oauth and token:
            token = self.oauth.access_token(failed=token)
            response = self._send(method, url, token, **kwargs)
        if response.status_code not in ok:
            self.classify(response)
        return response

    def _send(self, method: str, url: str, token: str | None, **kwargs: Any) -> httpx.Response:
        if token is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{method} {url}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        except UnicodeEncodeError as exc:
            raise unencodable(exc, f"{method} {escaped(url)}") from None

    # the contract ---------------------------------------------------------------------
    @abstractmethod
    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        """The target's current record for the match key, or None when absent."""

    @abstractmethod
    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        """Create or update the record with `fields` (already filtered for ownership)."""

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        """The record `record_id` of `obj` as this connection stores it (a mapping's `fetch:`
        reads it before mapping); DataError `source_record_missing` when it is gone. Failures
        are classified like writes."""
        raise DataError(
            f"the {self.name} connector cannot fetch records; fetch from a connection whose "
            "connector can (hubspot, salesforce)",
            category=DeadCategory.MAPPING,
        )

    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """A page of the records of `poll.object` whose stamp (`poll.cursor`) is at or after
        `since` (inclusive: records sharing the cursor's stamp are not lost; the ledger
        deduplicates the ones already recorded) and, with `until`, at or before it; in
        (stamp, id) order, at most `poll.page_size`, each with its id and stamp. `cursor`: the
        vendor's page cursor the previous page at the same `since` returned. Failures are
        classified like writes (an AuthError pauses the connection). Connectors that can list
        set `lists_changes` and override this (the configuration refuses a polling source on
        any other)."""
        raise DataError(
            f"the {self.name} connector cannot list changed records",
            category=DeadCategory.MAPPING,
        )

    def fetch_requests(self, count: int) -> int:
        """How many requests fetch_many makes for `count` distinct ids: the places it takes
        in the connection's rate limit (one per id here; a batch read overrides both)."""
        return count

    def fetch_many(
        self, obj: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, Any] | HubError]:
        """Several records by id (connectors with a batch read override this)."""
        found: dict[str, dict[str, Any] | HubError] = {}
        for record_id in dict.fromkeys(ids):
            try:
                found[record_id] = self.fetch(obj, record_id, properties)
            except HubError as exc:
                found[record_id] = exc
        return found

    def find_or_create(self, records: Sequence[MappedRecord]) -> list[str | HubError]:
        """The target's id of each related record (a mapping's `related:`), found on its
        match key or created with its fields; one object and match field per call. The
        caller holds each key's lock, so a key is never created twice."""
        outcomes: list[str | HubError] = []
        for record in records:
            try:
                result = self.deliver(record)
            except HubError as exc:
                outcomes.append(exc)
                continue
            outcomes.append(result.record_id or str(record.match_value))
        return outcomes

    def deliver(self, record: MappedRecord) -> WriteResult:
        """Find-or-create on the match key, honouring field ownership: a target-owned field
        is written only where the target's value is empty (the record is read once)."""
        try:
            return self._deliver(record)
        except UnicodeEncodeError as exc:  # in a URL built from the record, say
            raise unencodable(exc, f"{self.name} connector") from None

    def _deliver(self, record: MappedRecord) -> WriteResult:
        values = record.values()
        needs_read = bool(record.target_owned) or record.action == "update_only"
        existing = self.read(record) if needs_read and record.match_value is not None else None
        if record.action == "update_only" and existing is None:
            return WriteResult(
                "skipped",
                skipped_fields=tuple(values),
                excerpt="update_only: no such record at the target",
            )
        skipped = tuple(
            name
            for name in record.target_owned
            if existing is not None and not is_empty(existing.get(name))
        )
        fields = {k: v for k, v in values.items() if k not in skipped}
        result = self.write(record, fields, existing)
        return WriteResult(
            result.operation,
            result.status,
            result.record_id,
            result.excerpt,
            skipped_fields=skipped,
            written_fields=tuple(fields),
        )

    def deliver_batch(self, records: Sequence[MappedRecord]) -> list[WriteResult | HubError]:
        """Deliver several records; one outcome per record, in order. Connectors with a batch
        API override this to send them in one request."""
        outcomes: list[WriteResult | HubError] = []
        for record in records:
            try:
                outcomes.append(self.deliver(record))
            except HubError as exc:
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        self.client.close()
