"""The ledger's Lua scripts, assembled once per process.

Each script is: the queue's message builder; common.lua (what every script shares); the files
the script includes (the claim logic, claim_one.lua, for both claims; operator.lua, what dead
letters and operators' actions share); the script's own file
(core/ledger/<name>.lua, whose header states its request and its reply). Here, once per
process, each key a script names (`delivery_key(id)`) becomes the expression that builds it
(core/ledger/keys.py) and each word of the vocabulary (`State.pending`) its quoted value: the
scripts read as the contract is written and pay nothing for it per call.
"""

from __future__ import annotations

import re
from enum import StrEnum
from importlib import resources

from core.errors import LedgerScriptError
from core.ledger.deliveries import lua_table
from core.ledger.keys import StatsHash, expand_lua_keys
from core.queue import DELIVERY_PLACEHOLDER, TAG_PLACEHOLDER
from core.vocabulary import SCRIPT_WORDS

#: every script, and the files it includes between common.lua and itself
SCRIPTS: dict[str, tuple[str, ...]] = {
    "accept": (),
    "claim": ("claim_one",),
    "claim_batch": ("claim_one",),
    "claim_next": ("claim_one",),
    "finish": ("operator",),
    "sweep": (),
    "pause": ("operator",),
    "resume": ("operator",),
    "replay": ("operator",),
    "edit": ("operator",),
    "evict": (),
    "purge": ("operator",),
    "permit": (),
    "read_outcome": (),
}
#: the enumerations a script may name as `<Enum>.<value>`
WORDS: dict[str, type[StrEnum]] = {**SCRIPT_WORDS, "StatsHash": StatsHash}
_WORD = re.compile(r"\b(" + "|".join(WORDS) + r")\.(\w+)")


def _lua_string(text: str) -> str:
    """`text` as a Lua long string literal (no escaping needed inside one)."""
    level = "=" * next(n for n in range(1, 10) if f"]{'=' * n}]" not in text)
    return f"[{level}[{text}]{level}]"


def message_function(template: str) -> str:
    """Lua `message(id, tag)`: the queue's message template as one concatenation.

    The template's placeholders are split out here, once, instead of substituted in the script
    on every publish (two string.gsub passes over the ~1 KB message took ~8 us of Redis time
    per message, a tenth of the receiver's accept script).
    """
    holes = {DELIVERY_PLACEHOLDER: "id", TAG_PLACEHOLDER: "tag"}
    pieces = re.split(f"({re.escape(DELIVERY_PLACEHOLDER)}|{re.escape(TAG_PLACEHOLDER)})", template)
    expression = " .. ".join(
        holes[piece] if piece in holes else _lua_string(piece) for piece in pieces if piece
    )
    return f"local function message(id, tag) return {expression} end\n"


def lua_source(name: str) -> str:
    return resources.files("core.ledger").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def spell_words(source: str, where: str) -> str:
    """`State.pending` -> `'pending'`; a word that is not in its enumeration is an error."""

    def spell(match: re.Match[str]) -> str:
        enum = WORDS[match[1]]
        try:
            return f"'{enum(match[2]).value}'"
        except ValueError:
            raise LedgerScriptError(
                f"{where}: {match[0]} is not a {match[1]} (one of: "
                f"{', '.join(m.value for m in enum)}; core/vocabulary.py)"
            ) from None

    return _WORD.sub(spell, source)


def load_script(name: str, template: str) -> str:
    """A script's source, ready to register."""
    body = lua_table() + "\n".join(lua_source(part) for part in ("common", *SCRIPTS[name], name))
    return message_function(template) + spell_words(
        expand_lua_keys(body), f"core/ledger/{name}.lua"
    )
