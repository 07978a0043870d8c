"""The ledger: the durable state of every event and delivery (Redis, Lua per state change)."""

from core.ledger.model import EventState, NewDelivery, NewEvent, RecordResult, State
from core.ledger.store import Ledger, translate_redis_errors

__all__ = ["EventState", "Ledger", "NewDelivery", "NewEvent", "RecordResult", "State",
           "translate_redis_errors"]
