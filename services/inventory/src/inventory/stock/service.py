"""Stock levels: reads, admin adjustments, the low-stock rule. Owns its transactions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.catalog.exceptions import ProductNotFound
from inventory.config import InventorySettings
from inventory.events import outbox
from inventory.stock import repository
from inventory.stock.exceptions import StockBelowReserved
from inventory.stock.models import MovementKind, StockItem
from inventory.stock.repository import LockedStock, Movement
from inventory.stock.schemas import StockOut, StockPage
from shared.contracts.inventory import StockLow
from shared.messaging import Envelope

LOW_STOCK_CURSOR = "inventory.low-stock"


def stock_out(item: StockItem, reorder_point: int) -> StockOut:
    return StockOut(
        sku=item.sku,
        on_hand=item.on_hand,
        reserved=item.reserved,
        available=item.on_hand - item.reserved,
        reorder_point=reorder_point,
    )


def low_stock_alarm(
    *, sku: str, available: int, reorder_point: int, alerted: bool
) -> tuple[bool, StockLow | None]:
    """The once-per-crossing rule for one row just changed: the alarm's new state, and the
    ``stock_low`` due now, if any.

    ``stock_low`` is due when available falls to or under the reorder point while the alarm
    is not raised; the alarm is re-armed when available climbs back above it, so a run of
    sales past the point says so once.
    """
    low = available <= reorder_point
    if low and not alerted:
        return True, StockLow(sku=sku, available=available, reorder_point=reorder_point)
    return low, None


def low_stock_events(locked: Sequence[LockedStock]) -> list[StockLow]:
    """Apply the once-per-crossing rule (``low_stock_alarm``) to rows just changed (and still
    locked), raising or re-arming their alarms."""
    events = []
    for row in locked:
        item = row.item
        alerted, event = low_stock_alarm(
            sku=item.sku,
            available=item.on_hand - item.reserved,
            reorder_point=row.reorder_point,
            alerted=item.low_stock_alerted,
        )
        item.low_stock_alerted = alerted
        if event is not None:
            events.append(event)
    return events


async def get_stock(*, session: AsyncSession, sku: str) -> StockOut:
    found = await repository.get_stock(session, sku=sku)
    if found is None:
        raise ProductNotFound(sku)
    return stock_out(*found)


async def adjust_stock(
    *, session: AsyncSession, sku: str, delta: int, reason: str, actor: str
) -> StockOut:
    """Add ``delta`` to on hand (negative removes); refused if it would cut into reserved."""
    async with session.begin():
        locked = await repository.lock_stock(session, skus=[sku])
        if not locked:
            raise ProductNotFound(sku)
        row = locked[0]
        item = row.item
        if item.on_hand + delta < item.reserved:
            raise StockBelowReserved(sku, item.on_hand, item.reserved, delta)
        item.on_hand += delta
        item.updated_at = func.now()
        await repository.record_movements(
            session,
            [Movement(sku, MovementKind.ADJUSTMENT, delta, 0, reason, actor)],
        )
        await outbox.add_many(session, [Envelope.new(e) for e in low_stock_events(locked)])
        return stock_out(item, row.reorder_point)


async def list_low_stock(
    *, session: AsyncSession, settings: InventorySettings, limit: int, cursor: str | None
) -> StockPage:
    cursors = settings.cursor_codec
    rows = await repository.low_stock_page(
        session, after=cursors.after(LOW_STOCK_CURSOR, cursor), limit=limit + 1
    )
    page, next_cursor = cursors.page(
        LOW_STOCK_CURSOR, rows, limit=limit, position=lambda row: row[0].sku
    )
    return StockPage(
        items=[stock_out(item, point) for item, point in page], next_cursor=next_cursor
    )
