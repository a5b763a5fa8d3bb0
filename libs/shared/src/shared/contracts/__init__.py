"""Versioned event contracts, one module per producer; importing this registers them all."""

from shared.contracts import inventory, orders, payments
from shared.contracts.base import (
    EventPayload,
    UnknownEventError,
    all_contracts,
    contract,
    payload_model,
)
from shared.contracts.money import Money

__all__ = [
    "EventPayload",
    "Money",
    "UnknownEventError",
    "all_contracts",
    "contract",
    "inventory",
    "orders",
    "payload_model",
    "payments",
]
