"""The ledger: the durable state of every event and delivery (Redis, Lua per state change).

Its contract: the key layout (core/ledger/keys.py, listed again in common.lua's header), each
script's request and reply (the script's header; core/ledger/replies.py), and the words it
stores (core/vocabulary.py). Every process opens it with open_ledger.
"""

from core.ledger.model import NewDelivery, NewEvent
from core.ledger.replies import Accepted, BatchClaimed, Claim, Finish, Swept
from core.ledger.store import Ledger, RateSpec, open_ledger
from core.ledger.translate import translate_redis_errors
from core.vocabulary import EventState, State

__all__ = [
    "Accepted",
    "BatchClaimed",
    "Claim",
    "EventState",
    "Finish",
    "Ledger",
    "NewDelivery",
    "NewEvent",
    "RateSpec",
    "State",
    "Swept",
    "open_ledger",
    "translate_redis_errors",
]
