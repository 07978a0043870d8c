"""The YAML's shape, validated with marshmallow. Produces plain dicts; loader.py builds the
model objects and runs the checks that span sections (references, secrets)."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.config.alerting import AlertsSchema, IntegrationSchema
from core.config.durations import Duration
from core.config.fields import NameList, PathList, SplitField, TransformList, ValueRefField
from core.config.polling import PollSchema
from core.config.two_way import TwoWaySchema
from core.signatures import SCHEMES

NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", error="names are 1-64 letters, digits, '_', '.', '-'"
)
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME = validate.Regexp(ENV_NAME_PATTERN, error="not an environment variable name")


class VerifySchema(Schema):
    scheme = fields.String(
        required=True,
        validate=validate.OneOf(
            sorted(SCHEMES), error="unknown scheme {input!r}; expected one of {choices}"
        ),
    )
    secret_env = NameList(item_validator=ENV_NAME)
    version = fields.String(validate=validate.OneOf(["v1", "v2", "v3"]))
    tolerance_seconds = fields.Integer(validate=validate.Range(min=1, max=86400))
    header = fields.String()
    algorithm = fields.String(validate=validate.OneOf(["sha1", "sha256", "sha512"]))
    encoding = fields.String(validate=validate.OneOf(["hex", "base64"]))
    prefix = fields.String()
    timestamp_header = fields.String()
    timestamp_separator = fields.String()

    @validates_schema
    def _scheme_needs(self, data: dict[str, Any], **kwargs: Any) -> None:
        scheme = data.get("scheme")
        if scheme == "hmac" and not data.get("header"):
            raise ValidationError(
                "the hmac scheme needs `header` (the signature header's name)", "header"
            )
        if scheme not in (None, "none") and not data.get("secret_env"):
            raise ValidationError(
                "name the environment variable(s) holding the signing secret", "secret_env"
            )
        if scheme != "hubspot" and "version" in data:
            raise ValidationError("`version` applies to the hubspot scheme only", "version")


class EchoSchema(Schema):
    """Two-way sync: this source's events may be echoes of the hub's own writes."""

    connection = fields.String(required=True)
    object = fields.String(required=True)
    record = PathList(required=True)  # the target's record id (or match value)
    fields_ = PathList(data_key="fields")  # an object of field -> value
    field = PathList()  # or: one changed field's name ...
    value = PathList()  # ... and its new value
    window_seconds = fields.Integer(load_default=600, validate=validate.Range(min=1, max=7 * 86400))

    @validates_schema
    def _one_shape(self, data: dict[str, Any], **kwargs: Any) -> None:
        single = "field" in data and "value" in data
        if ("fields_" in data) == single or ("field" in data) != ("value" in data):
            raise ValidationError(
                "give `fields` (path to an object of field -> value) or "
                "both `field` and `value` (one changed property)"
            )


class SourceSchema(Schema):
    verify = fields.Nested(VerifySchema)  # webhooks (required unless the source polls)
    poll = fields.Nested(PollSchema)  # list changed records on a schedule (core/polling.py)
    echo = fields.Nested(EchoSchema)
    allow_unsigned = fields.Boolean(load_default=False)
    event_id = ValueRefField(composite=True)  # a list: the values joined with "|"
    event_type = ValueRefField()
    occurred_at = ValueRefField()
    batch = fields.Boolean(load_default=False)
    # one event per element of the arrays named (QuickBooks: several entities per request)
    split = SplitField()
    public_url = fields.Url(require_tld=False, schemes={"http", "https"})
    max_body_bytes = fields.Integer(validate=validate.Range(min=1, max=64 * 1024 * 1024))
    # alerts (core/alerting): no event for this long fires went_quiet
    expect_activity_within = Duration()

    @validates_schema
    def _webhooks_or_polls(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "verify" not in data and "poll" not in data:
            raise ValidationError(
                "a source receives webhooks (`verify:` says how they are signed) or polls a "
                "connection (`poll:`), or both; give at least one",
                "verify",
            )

    @validates_schema
    def _one_way_to_many(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("batch") and "split" in data:
            raise ValidationError(
                "give `batch: true` (the body is an array of events) or `split` (events "
                "inside one object), not both",
                "split",
            )

    @validates_schema
    def _unsigned_is_explicit(self, data: dict[str, Any], **kwargs: Any) -> None:
        verify = data.get("verify") or {}
        if verify.get("scheme") == "none" and not data.get("allow_unsigned"):
            raise ValidationError(
                "scheme `none` accepts unsigned webhooks from anyone; set "
                "`allow_unsigned: true` on the source to mean it",
                "allow_unsigned",
            )


class RateLimitSchema(Schema):
    requests = fields.Integer(required=True, validate=validate.Range(min=1))
    per_seconds = fields.Float(required=True, validate=validate.Range(min=0.001))
    burst = fields.Integer(validate=validate.Range(min=1))


class RetrySchema(Schema):
    base_seconds = fields.Float(validate=validate.Range(min=0.01))
    max_seconds = fields.Float(validate=validate.Range(min=0.01))
    give_up_after_seconds = fields.Float(validate=validate.Range(min=1))


class AuthSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(
            ["none", "bearer", "basic", "header", "oauth2", "client_credentials", "api_token"]
        ),
    )
    token_env = fields.String(validate=ENV_NAME)
    username_env = fields.String(validate=ENV_NAME)
    password_env = fields.String(validate=ENV_NAME)
    header = fields.String()
    value_env = fields.String(validate=ENV_NAME)
    client_id_env = fields.String(validate=ENV_NAME)
    client_secret_env = fields.String(validate=ENV_NAME)
    refresh_token_env = fields.String(validate=ENV_NAME)
    token_url = fields.Url(require_tld=False)

    REQUIRED = {
        "bearer": ("token_env",),
        "api_token": ("token_env",),  # Pipedrive's x-api-token header
        "basic": ("username_env", "password_env"),
        "header": ("header", "value_env"),
        "oauth2": ("client_id_env", "client_secret_env", "refresh_token_env"),
        "client_credentials": ("client_id_env", "client_secret_env"),
    }

    @validates_schema
    def _required_for_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        missing = [k for k in self.REQUIRED.get(data.get("type", ""), ()) if not data.get(k)]
        if missing:
            raise ValidationError(
                {k: [f"required for auth type {data['type']!r}"] for k in missing}
            )


TARGET_TYPES = ("string", "number", "boolean", "date", "datetime", "enum", "email", "phone")
TEXT_TYPES = ("string", "email", "phone", "enum")


class TargetFieldSchema(Schema):
    """`connections.<c>.objects.<o>.fields.<field>`: what the target accepts in that field."""

    type = fields.String(
        validate=validate.OneOf(
            TARGET_TYPES, error="unknown type {input!r}; expected one of {choices}"
        )
    )
    max_length = fields.Integer(validate=validate.Range(min=1))
    required = fields.Boolean()
    values = fields.List(
        fields.Raw(allow_none=True),
        validate=validate.Length(min=1, error="the picklist needs at least one value"),
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind = data.get("type")
        if kind == "enum" and "values" not in data:
            raise ValidationError("type enum needs `values` (the picklist)", "values")
        if "values" in data and kind not in (None, "enum"):
            raise ValidationError(
                f"`values` (a picklist) applies to type enum, not {kind}", "values"
            )
        if "max_length" in data and kind not in (None, *TEXT_TYPES):
            raise ValidationError(f"`max_length` applies to text types, not {kind}", "max_length")


class ObjectSpecSchema(Schema):
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(TargetFieldSchema),
        data_key="fields",
        required=True,
    )


COLUMN_NAME = validate.Regexp(
    r"^[a-z_][a-z0-9_]*$", error="not a column's logical name (lower case, e.g. emailaddress1)"
)


class ConnectionSchema(Schema):
    connector = fields.String(required=True)
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    # Salesforce: where OAuth happens; API calls then go to the token's instance_url
    login_url = fields.Url(require_tld=False, schemes={"http", "https"})
    # Zoho CRM: the customer's data centre's accounts server (https://accounts.zoho.eu);
    # API calls then go to the token answer's api_domain
    accounts_url = fields.Url(require_tld=False, schemes={"http", "https"})
    api_version = fields.String(
        validate=validate.Regexp(r"^[0-9]{2,3}\.0$", error='a version such as "62.0"')
    )
    auth = fields.Nested(AuthSchema, load_default=lambda: {"type": "none"})
    # Dynamics 365: the alternate keys defined in Dataverse, per entity set (a match field
    # must be one: writes upsert on it, `PATCH /contacts(emailaddress1='...')`)
    alternate_keys = fields.Dict(
        keys=fields.String(),
        values=fields.List(
            fields.String(validate=COLUMN_NAME),
            validate=validate.Length(min=1, error="name at least one key column"),
        ),
    )
    rate_limit = fields.Nested(RateLimitSchema)
    retry = fields.Nested(RetrySchema)
    timeout_seconds = fields.Float(validate=validate.Range(min=0.1, max=300))
    options = fields.Dict(keys=fields.String())
    objects = fields.Dict(keys=fields.String(), values=fields.Nested(ObjectSpecSchema))
    # alerts (core/alerting): no successful delivery for this long fires went_quiet
    expect_success_within = Duration()

    @validates_schema
    def _an_address(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not {"base_url", "login_url", "accounts_url"} & set(data):
            raise ValidationError(
                "give `base_url` (the API's address), or `login_url` (salesforce) or "
                "`accounts_url` (zoho) for a connector that logs in there and is told its "
                "API address",
                "base_url",
            )


class PredicateSchema(Schema):
    path = fields.String(required=True)
    equals = fields.Raw(allow_none=True)
    in_ = fields.List(fields.Raw(allow_none=True), data_key="in")
    exists = fields.Boolean()


class WhenSchema(Schema):
    event_type = NameList()
    fields_ = fields.List(fields.Nested(PredicateSchema), data_key="fields")


def _phone_region(value: str) -> None:
    import phonenumbers

    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(
            f"unknown region {value!r}; expected a two-letter country code such as US, GB or DE"
        )


class MatchSchema(Schema):
    field = fields.String(required=True)
    from_ = PathList(required=True, data_key="from")
    normalize = fields.String(validate=validate.OneOf(["email", "phone", "lower", "strip"]))
    fold_plus_addressing = fields.Boolean()
    region = fields.String(validate=_phone_region)
    # the match field is an External ID field at the target: write by upsert on it
    external_id = fields.Boolean()

    @validates_schema
    def _region_for_phones(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "region" in data and data.get("normalize") != "phone":
            raise ValidationError("`region` applies to `normalize: phone`", "region")


class FieldSchema(Schema):
    from_ = PathList(data_key="from")
    const = fields.Raw(allow_none=True)
    default = fields.Raw(allow_none=True)
    required = fields.Boolean()
    transform = TransformList()
    owner = fields.String(validate=validate.OneOf(["source", "target"]))

    @validates_schema
    def _one_origin(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "from_" in data and "const" in data:
            raise ValidationError("give `from` or `const`, not both")
        if "from_" not in data and "const" not in data and not _builds(data.get("transform")):
            raise ValidationError(
                "each field needs `from` (a dotted path), `const` (a value), "
                "or a first transform that builds the value from the event "
                "({template: ...} or {join: {paths: [...]}})"
            )


def _builds(transform: tuple[dict[str, Any], ...] | None) -> bool:
    """Whether the first transform builds the value from the event (template, join paths)."""
    if not transform:
        return False
    ((name, args),) = transform[0].items()
    return name == "template" or (name == "join" and isinstance(args, dict) and "paths" in args)


class FieldOrPath(fields.Field):
    """A field is a full spec, or the shorthand `target_field: dotted.path`."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = {"from": value}
        if not isinstance(value, dict):
            raise ValidationError("expected a dotted path or a mapping with `from`/`const`")
        loaded: dict[str, Any] = FieldSchema().load(value)
        return loaded


class FetchSchema(Schema):
    """`mappings.<m>.fetch`: read the full record behind a thin webhook before mapping."""

    connection = fields.String(required=True)
    object = fields.String(required=True)
    id = PathList(required=True)
    properties = fields.List(fields.String(), load_default=list)
    window_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0, max=3600))


class RelatedSchema(Schema):
    """`mappings.<m>.related.<link field>`: a record found or created first, whose id the
    main record links to."""

    object = fields.String(required=True)
    match = fields.Nested(MatchSchema, required=True)
    fields_ = fields.Dict(
        keys=fields.String(), values=FieldOrPath(), data_key="fields", load_default=dict
    )


class MappingSchema(Schema):
    source = fields.String(required=True)
    connection = fields.String(required=True)
    object = fields.String(required=True)
    when = fields.Nested(WhenSchema)
    action = fields.String(validate=validate.OneOf(["upsert", "create_only", "update_only"]))
    match = fields.Nested(MatchSchema)
    fields_ = fields.Dict(
        keys=fields.String(), values=FieldOrPath(), data_key="fields", load_default=dict
    )
    conflict = fields.String(validate=validate.OneOf(["newest_wins", "source_wins"]))
    fetch = fields.Nested(FetchSchema)
    related = fields.Dict(keys=fields.String(), values=fields.Nested(RelatedSchema))
    # who owns it and why (`crmhub audit`)
    integration = fields.Nested(IntegrationSchema)
    two_way = fields.Nested(TwoWaySchema)  # one of a two-way pair (core/config/two_way.py)

    @validates_schema
    def _match_for_upserts(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("action", "upsert") != "create_only" and "match" not in data:
            raise ValidationError(
                "upserts and updates need `match` (the find-or-create key); "
                "only `action: create_only` may go without",
                "match",
            )


class ConfigSchema(Schema):
    sources = fields.Dict(
        keys=fields.String(validate=NAME), values=fields.Nested(SourceSchema), load_default=dict
    )
    connections = fields.Dict(
        keys=fields.String(validate=NAME), values=fields.Nested(ConnectionSchema), load_default=dict
    )
    mappings = fields.Dict(
        keys=fields.String(validate=NAME), values=fields.Nested(MappingSchema), load_default=dict
    )
    # on-call: sinks, rules, the scheduled report (core/config/alerting.py)
    alerts = fields.Nested(AlertsSchema, load_default=dict)
