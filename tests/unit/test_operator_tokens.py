"""CRMHUB_OPERATOR_TOKEN and CRMHUB_OPERATOR_TOKENS: parsed once with the settings, every
malformed entry reported with where it is and how to write it, never the token itself."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.operator_tokens import Role, authenticate, session_secret
from core.settings import Settings

GOOD = "0123456789abcdef0123"


def test_the_single_token_is_an_admin_named_admin_and_named_ones_add_roles() -> None:
    settings = Settings.from_env(
        {
            "CRMHUB_OPERATOR_TOKEN": GOOD,
            "CRMHUB_OPERATOR_TOKENS": f" ada:admin:{GOOD}x , viewer:read_only:{GOOD}y,",
        }
    )
    assert [(t.name, t.role) for t in settings.operator_tokens] == [
        ("admin", Role.ADMIN),
        ("ada", Role.ADMIN),
        ("viewer", Role.READ_ONLY),
    ]
    found = authenticate(settings.operator_tokens, GOOD + "y")
    assert found is not None and found.name == "viewer"
    assert authenticate(settings.operator_tokens, GOOD[:-1]) is None
    assert GOOD not in repr(settings) and GOOD not in repr(settings.operator_tokens)


def test_no_token_means_no_operator_access() -> None:
    settings = Settings.from_env({})
    assert settings.operator_tokens == ()
    assert session_secret(None, settings.operator_tokens) is None


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (
            "ada-admin-" + GOOD,
            "entry 1 has 1 part(s), expected 3; write entries as name:role:token",
        ),
        (f"ada:owner:{GOOD}", "entry 1 (ada): role 'owner' is not admin or read_only"),
        (f"ok:admin:{GOOD},b c:admin:{GOOD}x", "entry 2: the name 'b c' must be"),
        ("ada:admin:short", "entry 1 (ada): a token must be at least 16 characters"),
        (f"ada:admin:{GOOD},ada:read_only:{GOOD}x", "the name 'ada' is given twice"),
        (f"ada:admin:{GOOD},bob:read_only:{GOOD}", "'bob' has the same token as another entry"),
        (f"crmhub:admin:{GOOD}", "entry 1: the name 'crmhub' is the hub's own"),
    ],
)
def test_a_malformed_entry_says_which_what_and_how(value: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CRMHUB_OPERATOR_TOKENS": value})
    [problem] = caught.value.problems
    assert problem.key == "CRMHUB_OPERATOR_TOKENS"
    assert said in problem.message
    assert GOOD not in problem.message and "short" not in problem.message


def test_the_single_token_is_checked_too_and_cannot_reuse_the_name_admin() -> None:
    with pytest.raises(ConfigError, match="CRMHUB_OPERATOR_TOKEN: the token: a token must be"):
        Settings.from_env({"CRMHUB_OPERATOR_TOKEN": "short"})
    with pytest.raises(ConfigError, match="the name 'admin' is given twice"):
        Settings.from_env(
            {"CRMHUB_OPERATOR_TOKEN": GOOD, "CRMHUB_OPERATOR_TOKENS": f"admin:admin:{GOOD}x"}
        )


def test_the_session_key_is_the_configured_one_or_derived_the_same_on_every_host() -> None:
    tokens = Settings.from_env({"CRMHUB_OPERATOR_TOKEN": GOOD}).operator_tokens
    assert session_secret("explicit-key", tokens) == "explicit-key"
    derived = session_secret(None, tokens)
    assert derived and derived == session_secret(None, tuple(tokens))
    rotated = Settings.from_env({"CRMHUB_OPERATOR_TOKEN": GOOD + "z"}).operator_tokens
    assert session_secret(None, rotated) != derived
    assert Settings.from_env({"CRMHUB_SECRET_KEY": "k" * 32}).secret_key == "k" * 32
