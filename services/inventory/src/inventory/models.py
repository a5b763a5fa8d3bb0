"""Every mapped table of the service, imported in one place for Alembic and tools."""

from inventory.events import OutboxEvent, ProcessedEvent
from inventory.media.models import ProductMedia
from inventory.products.models import Product
from inventory.stock.models import (
    Reservation,
    ReservationLine,
    StockItem,
    StockMovement,
)

__all__ = [
    "OutboxEvent",
    "ProcessedEvent",
    "Product",
    "ProductMedia",
    "Reservation",
    "ReservationLine",
    "StockItem",
    "StockMovement",
]
