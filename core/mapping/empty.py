"""What "empty" means, wherever the hub asks: one definition.

A value is empty when it holds nothing a person would call a value: None (missing, or JSON
null), text that is blank (nothing or only whitespace), an empty list or an empty object.
0, false and "0" are values.

The engine asks it of a source value (empty: the next `from` path, then `default`, then the
field is skipped, or a problem when `required`) and the connectors of a target's current
value (a target-owned field is written only where the target's value is empty). One answer
for both, so a single write and a batch write, and every connector, keep exactly the same
fields, and what the hub would never write (blank text) is what it fills in at the target.
"""

from __future__ import annotations

from typing import Any


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return False
