"""The ledger's contract is written once and both sides agree on it: the key layout
(core/ledger/keys.py, the Lua builders generated from it, common.lua's header), the words the
scripts store and compare (core/vocabulary.py), and each script's stated request and reply."""

from __future__ import annotations

import inspect
import re
from importlib import resources

import fakeredis
import pytest

from core.ledger.keys import LAYOUT, LedgerKeys, expand_lua_keys
from core.ledger.scripts import SCRIPTS, WORDS, load_script, lua_source, spell_words
from core.queue import HintQueue
from core.vocabulary import SCRIPT_WORDS

LUA_FILES = sorted(
    path.name[:-4]
    for path in resources.files("core.ledger").iterdir()
    if path.name.endswith(".lua")
)
#: a value per placeholder: distinct, with the characters ids and names may hold
SAMPLE = {
    "id": "dlv_01J",
    "source": "stripe",
    "external_id": "evt:1|x",
    "digest": "q8Zx_0a-AbC",
    "ref": "crm:contacts:a",
    "pair": "marketing",
    "record": "ada@example.com",
    "rk": "crm:contacts:email=a@b.c",
    "connection": "hub-spot",
    "object": "contacts",
    "name": "webhooks",
    "mapping": "stripe-to-crm",
    "category": "mapping",
    "term": "ada@example.com",
    "key": "Acme Corp",
}


def without_comments(lua: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in lua.splitlines())


# the key map -----------------------------------------------------------------------------
def test_ledger_keys_builds_every_kind_of_the_layout_and_nothing_else() -> None:
    keys = LedgerKeys("hub")
    methods = {
        name
        for name, _ in inspect.getmembers(LedgerKeys, inspect.isfunction)
        if not name.startswith("_")
    }
    assert methods == {kind.name for kind in LAYOUT}
    for kind in LAYOUT:
        method = getattr(keys, kind.name)
        assert tuple(inspect.signature(method).parameters) == kind.parts, kind.name
        built = method(**{part: SAMPLE[part] for part in kind.parts})
        assert built == "hub:" + kind.pattern.format(**SAMPLE), kind.name


def test_the_scripts_build_the_same_keys_as_python() -> None:
    client = fakeredis.FakeRedis()
    keys = LedgerKeys("hub")
    for kind in (k for k in LAYOUT if k.lua):
        call = f"{kind.name}_key({', '.join(f'ARGV[{i + 2}]' for i in range(len(kind.parts)))})"
        script = f"local p = ARGV[1]\nreturn {expand_lua_keys(call)}"
        built = client.eval(script, 0, "hub", *(SAMPLE[part] for part in kind.parts))
        assert built.decode() == getattr(keys, kind.name)(
            **{part: SAMPLE[part] for part in kind.parts}
        ), kind.name


def test_common_lua_lists_the_same_layout() -> None:
    header = re.findall(r"^--   <p>:(\S+)\s+(\w+)\s", lua_source("common"), re.MULTILINE)
    assert sorted(header) == sorted((kind.pattern, kind.type) for kind in LAYOUT)


def test_a_key_call_is_expanded_with_its_arguments_whatever_they_hold() -> None:
    assert (
        expand_lua_keys("ZADD(ready_key(tostring(c), t[1]), now, id)")
        == "ZADD((p .. ':ready:' .. (tostring(c)) .. ':' .. (t[1])), now, id)"
    )
    assert (
        expand_lua_keys("GET(published_key()) .. ready_key_of(id)")
        == "GET((p .. ':msgseq')) .. ready_key_of(id)"
    )
    assert (
        expand_lua_keys("x(attempts_key(delivery_key(')')))")
        == "x((p .. ':dlv:' .. ((p .. ':dlv:' .. (')'))) .. ':attempts'))"
    )
    with pytest.raises(
        ValueError,
        match=r"ready_key takes 2 argument\(s\) "
        r"\(connection, object\), given 1",
    ):
        expand_lua_keys("ready_key(conn)")


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_script_builds_a_key_by_hand(name: str) -> None:
    """Every key in the scripts is named by its kind (the prefix `p` is used by nothing
    else)."""
    code = without_comments(lua_source(name))
    assert not re.search(r"\bp \.\.", code)
    assert not re.search(r"'[^']*:[^']*'", code), "a key-like literal"


# the vocabulary --------------------------------------------------------------------------
#: hash fields that happen to share a word with the vocabulary: a delivery's `mapping` (its
#: mapping's name) is not DeadCategory.mapping
FIELD_NAMES = {"mapping"}


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_script_spells_a_word_of_the_vocabulary_as_a_literal(name: str) -> None:
    words = {member.value for enum in SCRIPT_WORDS.values() for member in enum} - FIELD_NAMES
    literals = re.findall(r"'([^']*)'", without_comments(lua_source(name)))
    spelt = {w for literal in literals for w in re.findall(r"\w+", literal) if w in words}
    assert spelt == set(), f"{name}.lua: write these as <Enum>.<word> (core/vocabulary.py)"


def test_every_word_a_script_names_is_its_enumerations_and_spelt_as_its_value() -> None:
    for name in SCRIPTS:
        assembled = load_script(name, HintQueue("q", "p:q:").template)
        assert not re.search(rf"\b({'|'.join(WORDS)})\.\w+", assembled), name
    assert spell_words("if s == State.in_flight then", "x") == "if s == 'in_flight' then"
    with pytest.raises(ValueError, match=r"x.lua: State.inflight is not a State"):
        spell_words("State.inflight", "x.lua")


# each script's contract ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_script_states_its_request_and_its_reply(name: str) -> None:
    header = lua_source(name).split("\n\n", 1)[0]
    assert header.startswith(f"-- {name}: "), "the header names the script and what it does"
    assert "-- ARGV[1]: {" in header and "-- Reply: " in header


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_claim_logic_is_included_exactly_where_it_is_used(name: str) -> None:
    assert "claim_one(" not in lua_source("common")
    assert ("claim_one" in SCRIPTS[name]) == ("claim_one(" in lua_source(name))
