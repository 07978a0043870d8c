"""Operators' changes to the ledger (a base of core.ledger.Ledger): the pause switch, replay
and discard of dead letters, edit-and-replay. Each is one script (pause.lua, resume.lua,
replay.lua, edit.lua) that also writes the operator action log in the same atomic step when
an operator (`via`: api, dashboard, cli) asked for it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from core.ledger import replies
from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text
from core.vocabulary import OperatorAction


def _note(
    action: OperatorAction, now: float, by: str, via: str | None, reason: str, **extra: Any
) -> str | None:
    """An operator's action as the action log keeps it (None: not an operator's)."""
    if via is None:
        return None
    return json.dumps({"at": now, "action": action, "by": by, "via": via, "reason": reason} | extra)


def note_field(note: str | None) -> dict[str, str]:
    return {"note": note} if note else {}


class OperatorWrites:
    redis: redis.Redis
    keys: LedgerKeys

    _run: Callable[..., Any]  # core.ledger.store.Ledger runs the scripts

    def pause(
        self,
        connection: str,
        *,
        reason: str,
        by: str,
        now: float,
        detail: str = "",
        via: str | None = None,
    ) -> bool:
        """Pause a connection; `via` (an operator's: api, dashboard, cli) logs the action."""
        info = {"reason": reason, "since": now, "by": by, "detail": detail}
        note = _note(OperatorAction.PAUSE, now, by, via, reason, connection=connection)
        return bool(
            self._run("pause", now, conn=connection, info=json.dumps(info), **note_field(note))
        )

    def resume(
        self,
        connection: str,
        now: float,
        *,
        chunk: int = 500,
        by: str = "",
        via: str | None = None,
    ) -> int:
        """Lift the pause and release every held delivery in order; returns how many."""
        released = 0
        note = note_field(_note(OperatorAction.RESUME, now, by, via, "", connection=connection))
        first = True
        while True:
            with translate_redis_errors():
                before = int(self.redis.zcard(self.keys.held(connection)))
            remaining = int(
                self._run(
                    "resume",
                    now,
                    conn=connection,
                    limit=chunk,
                    lift=first,
                    **(note if first else {}),
                )
            )
            first = False
            if remaining < 0:  # paused again while draining
                return released
            released += before - remaining
            if remaining == 0:
                return released

    def dead_letter_action(
        self,
        action: OperatorAction,
        items: Sequence[tuple[str, str] | tuple[str, str, str]],
        *,
        now: float,
        by: str,
        reason: str = "",
        via: str = "cli",
        operation: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Replay or discard DEAD deliveries. `items`: (delivery id, record key[, dead_at as
        the operator saw it: one that died again since is left alone, Reason.changed]).
        `operation`: the bulk operation this chunk belongs to (its progress is counted)."""
        note = json.dumps(
            {"at": now, "action": action, "by": by, "via": via, "reason": reason}
            | ({"operation": operation} if operation else {})
            | dict(extra or {})
        )
        return replies.replayed(
            [item[0] for item in items],
            self._run(
                "replay",
                now,
                action=action,
                note=note,
                items=[
                    {"id": item[0], "rk": item[1]} | ({"dead_at": item[2]} if len(item) > 2 else {})
                    for item in items
                ],
                **({"op": operation} if operation else {}),
            ),
        )

    def edit_and_replay(
        self,
        delivery_id: str,
        *,
        dead_at: str | None,
        record_key: str,
        event_id: str,
        event_fields: Mapping[str, str],
        note: Mapping[str, Any],
        now: float,
    ) -> str:
        """Keep an edited copy of a dead letter's event beside the original and run the
        delivery again with it (edit.lua); 'ok' or what prevented it."""
        flat: list[str] = []
        for name, value in event_fields.items():
            flat += (name, value)
        return text(
            self._run(
                "edit",
                now,
                id=delivery_id,
                dead_at=dead_at,
                rk=record_key,
                event={"id": event_id, "fields": flat},
                note=json.dumps(dict(note)),
            )
        )
