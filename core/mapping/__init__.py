"""The mapping engine: declarative field mappings applied to events (pure, no I/O)."""

from core.mapping.engine import MappedRecord, map_event, match_value, record_key

__all__ = ["MappedRecord", "map_event", "match_value", "record_key"]
