"""The mapping engine: declarative field mappings applied to events (pure, no I/O)."""

from core.mapping.engine import map_event
from core.mapping.record import MappedRecord, match_value, record_key

__all__ = ["MappedRecord", "map_event", "match_value", "record_key"]
