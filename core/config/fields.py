"""The configuration's own marshmallow field types: the YAML shorthands (one string or a
list, a dotted path or `header:Name`, a transform chain) with errors that say what was
expected."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from core.paths import PathSyntaxError, ValueRef, parse_path


class NameList(fields.Field):
    """One string or a list of strings (e.g. `secret_env`, `event_type`)."""

    def __init__(self, item_validator: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item_validator = item_validator

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise ValidationError("expected a string or a non-empty list of strings")
        if self.item_validator is not None:
            for item in items:
                self.item_validator(item)
        return tuple(items)


class ValueRefField(fields.Field):
    """A dotted JSON path (`data.object.id`) or `header:Name`; with `composite=True` also a
    list of them, whose values are joined (a source's `event_id` when the sender's id is a
    combination)."""

    def __init__(self, composite: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.composite = composite

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> ValueRef:
        listed = (
            self.composite
            and isinstance(value, list)
            and len(value) >= 2
            and all(isinstance(v, str) for v in value)
        )
        if not isinstance(value, str) and not listed:
            raise ValidationError(
                "expected a dotted JSON path (data.object.id) or header:Name"
                + (", or a list of two or more of them" if self.composite else "")
            )
        try:
            return ValueRef.composite(value) if listed else ValueRef.parse(value)
        except PathSyntaxError as exc:
            raise ValidationError(str(exc)) from None


class SplitField(fields.Field):
    """`a[].b.c[]`: the arrays a request's events are split along (one event per element of
    the last); -> the paths of those arrays, each relative to an element of the one before."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[str, ...]:
        if not isinstance(value, str) or not value.endswith("[]"):
            raise ValidationError(
                "expected dotted paths to arrays, each followed by [] "
                "(eventNotifications[].dataChangeEvent.entities[])"
            )
        paths = tuple(part.removeprefix(".") for part in value[:-2].split("[]"))
        for path in paths:
            try:
                parse_path(path)
            except PathSyntaxError as exc:
                raise ValidationError(f"{value!r}: {exc}") from None
        return paths


class PathList(fields.Field):
    """One dotted path or a list of them (the first non-empty value wins)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[str, ...]:
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ValidationError("expected a dotted path or a list of dotted paths")
        for path in paths:
            try:
                parse_path(path)
            except PathSyntaxError as exc:
                raise ValidationError(str(exc)) from None
        return tuple(paths)


class TransformList(fields.Field):
    """`[email, {e164: {region: US}}]` -> ({"email": None}, {"e164": {"region": "US"}})."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[dict, ...]:
        items = value if isinstance(value, list) else [value]
        steps: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, str):
                steps.append({item: None})
            elif isinstance(item, dict) and len(item) == 1:
                steps.append(dict(item))
            else:
                raise ValidationError(
                    f"each transform is a name (email) or a one-key mapping ({{e164: {{region: "
                    f"US}}}}), got {item!r}"
                )
        return tuple(steps)
