"""Every mapped table of the service, imported in one place (Alembic's env.py uses it)."""

from orders.catalog.models import CatalogPrice
from orders.events import OutboxEvent, ProcessedEvent
from orders.order.models import IdempotencyRecord, Order, OrderLine, StatusChange

__all__ = [
    "CatalogPrice",
    "IdempotencyRecord",
    "Order",
    "OrderLine",
    "OutboxEvent",
    "ProcessedEvent",
    "StatusChange",
]
