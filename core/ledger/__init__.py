"""The ledger: the durable state of every event and delivery (Redis, Lua per state change)."""

from core.ledger.model import EventState, NewDelivery, NewEvent, RecordResult, State
from core.ledger.store import Claim, Finish, Ledger
from core.ledger.translate import translate_redis_errors

__all__ = ["Claim", "EventState", "Finish", "Ledger", "NewDelivery", "NewEvent", "RecordResult",
           "State", "translate_redis_errors"]
