"""Bodies that are not what a source promises: 400 `malformed` saying what and where, nothing
recorded (issue 9, items 5 and 7). The fixtures are test_receiver.py's."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import hypothesis
import pytest
from flask.testing import FlaskClient
from hubtest import GITHUB_SECRET, STRIPE_SECRET, signed, stripe_event
from hypothesis import given
from hypothesis import strategies as st
from test_receiver import client, hubspot_batch, post_hubspot, settings  # noqa: F401
from werkzeug.test import TestResponse

from core.intake import MAX_JSON_DEPTH, nesting_too_deep


def post_stripe_raw(client: FlaskClient, body: bytes) -> TestResponse:
    body, headers = signed("stripe", body, STRIPE_SECRET)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def assert_malformed(response: TestResponse, *words: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    payload = response.get_json()
    assert payload["error"] == "malformed"
    for word in words:
        assert word in payload["detail"], payload["detail"]


def nothing_recorded(r: fakeredis.FakeRedis) -> bool:
    return r.keys("crmhub-unit:evt:*") == []


def nested(depth: int) -> bytes:
    """A Stripe event whose metadata nests arrays and objects `depth` levels in all."""
    event = stripe_event("evt_deep")
    inner: Any = "bottom"
    for level in range(depth - 3):  # the event, data, object: 3 levels
        inner = [inner] if level % 2 else {"k": inner}
    event["data"]["object"]["metadata"] = inner
    return json.dumps(event).encode()


# --- item 5: nesting -------------------------------------------------------------------------


def test_a_body_nested_5000_levels_is_400_malformed_naming_the_limit(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    response = post_stripe_raw(client, b"[" * 5000 + b"]" * 5000)
    assert_malformed(response, f"{MAX_JSON_DEPTH} levels")
    object_bomb = b'{"a":' * 5000 + b"1" + b"}" * 5000
    assert_malformed(post_stripe_raw(client, object_bomb), f"{MAX_JSON_DEPTH} levels")
    assert nothing_recorded(fake_redis)


def test_nesting_up_to_the_limit_is_accepted_one_more_level_is_not(client: FlaskClient) -> None:
    assert post_stripe_raw(client, nested(MAX_JSON_DEPTH)).status_code == 202
    assert_malformed(post_stripe_raw(client, nested(MAX_JSON_DEPTH + 1)), "deep")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# strings full of what could fool a scanner: brackets, quotes, backslashes
tricky_text = st.text(alphabet='[]{}"\\ab:,', max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=40,
)


@hypothesis.settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=6))
def test_the_nesting_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert nesting_too_deep(body, limit) == (_depth(value) > limit)


# --- item 7: what the source promises --------------------------------------------------------


@pytest.mark.parametrize(
    "body, kind",
    [
        (b"[]", "an array"),
        (b'[{"id": "evt_1"}]', "an array"),
        (b'"evt_1"', "a string"),
        (b"null", "null"),
        (b"42", "a number"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis, body: bytes, kind: str
) -> None:
    assert_malformed(post_stripe_raw(client, body), kind, "JSON object")
    assert nothing_recorded(fake_redis)


def test_an_event_without_its_configured_id_is_400_naming_the_field(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    event = stripe_event()
    del event["id"]
    assert_malformed(post_stripe_raw(client, json.dumps(event).encode()), "`id`", "event_id")
    event["id"] = ""
    assert_malformed(post_stripe_raw(client, json.dumps(event).encode()), "`id`")
    assert nothing_recorded(fake_redis)


def test_an_event_without_its_id_header_is_400_naming_the_header(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    body, headers = signed("github", {"action": "opened"}, GITHUB_SECRET)
    headers["X-GitHub-Event"] = "issues"  # but no X-GitHub-Delivery
    response = client.post("/webhooks/github", data=body, headers=headers)
    assert_malformed(response, "header X-GitHub-Delivery")
    assert nothing_recorded(fake_redis)


def test_each_batch_element_must_be_an_object_carrying_its_id(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    not_an_object = [*hubspot_batch(1), "eventId=2"]
    assert_malformed(post_hubspot(client, not_an_object), "element 1", "a string")
    no_id = hubspot_batch(1, 2, 3)
    del no_id[2]["eventId"]
    assert_malformed(post_hubspot(client, no_id), "element 2", "`eventId`")
    assert_malformed(post_hubspot(client, []), "non-empty")
    assert nothing_recorded(fake_redis)
