"""A source's `split:` (pure): one request carrying several events inside one JSON object
becomes one event per element.

QuickBooks Online sends one notification for several changed entities, possibly of several
companies: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{...},
{...}]}}]}`. With `split: eventNotifications[].dataChangeEvent.entities[]` each entity is an
event of its own (its own id, its own deliveries, deduplicated on its own), and each event's
body keeps the vendor's shape with every array on the path holding only that element, so a
mapping reads `eventNotifications.0.realmId` and `eventNotifications.0.dataChangeEvent.
entities.0.id` exactly as in the vendor's documented payload, and `crmhub mappings test` takes
the same paths.
"""

from __future__ import annotations

from typing import Any

from core.errors import CrmhubError
from core.paths import get_path, parse_path


class NothingToSplit(CrmhubError, ValueError):
    """The body has no element where the source's `split` says its events are; `detail`
    says which array."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def split_body(body: Any, paths: tuple[str, ...]) -> list[Any]:
    """One copy of `body` per element of the last array of `paths` (each path relative to an
    element of the array before), each with every array on the way holding only its own
    element; NothingToSplit when an array is missing or none of them holds an element."""
    pieces = _split(body, paths, "")
    if not pieces:
        shown = "[].".join(paths) + "[]"
        raise NothingToSplit(f"the body has no element at {shown} (the source's split)")
    return pieces


def _split(node: Any, paths: tuple[str, ...], where: str) -> list[Any]:
    if not paths:
        return [node]
    head, rest = paths[0], paths[1:]
    items = get_path(node, head)
    if not isinstance(items, list):
        raise NothingToSplit(
            f"{where}{head} is {'missing' if items is None else 'not an array'}; the "
            "source's split expects an array there"
        )
    pieces = []
    for position, item in enumerate(items):
        for inner in _split(item, rest, f"{where}{head}.{position}."):
            pieces.append(_with_only(node, parse_path(head), inner))
    return pieces


def _with_only(node: Any, steps: tuple[str | int, ...], element: Any) -> Any:
    """A copy of `node` whose array at `steps` holds only `element` (what is off the path is
    shared, read-only, with the original)."""
    if not steps:
        return [element]
    step, rest = steps[0], steps[1:]
    if isinstance(node, dict):
        out = dict(node)
        out[str(step)] = _with_only(node[str(step)], rest, element)
        return out
    index = int(step)
    out_list = list(node)
    out_list[index] = _with_only(node[index], rest, element)
    return out_list


__all__ = ["NothingToSplit", "split_body"]
