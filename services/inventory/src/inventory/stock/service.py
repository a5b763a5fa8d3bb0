"""Stock levels: read, adjusted and listed by admins (each in a transaction of its own), and
opened and rechecked by the catalog's product writes (inside the catalog's transaction)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.config import InventorySettings
from inventory.events import outbox
from inventory.products.exceptions import ProductNotFound
from inventory.stock.exceptions import StockBelowReserved
from inventory.stock.models import MovementKind, StockItem
from inventory.stock.repository import levels
from inventory.stock.repository.writes import Movement, StockChange, write_stock
from inventory.stock.rows import StockLevel
from inventory.stock.rules import low_stock_events
from inventory.stock.schemas import StockOut, StockPage
from shared.contracts.inventory import StockLow
from shared.messaging import Envelope

LOW_STOCK_CURSOR = "inventory.low-stock"
INITIAL_STOCK_REASON = "initial stock"


def stock_out(level: StockLevel) -> StockOut:
    return StockOut(
        sku=level.sku,
        on_hand=level.on_hand,
        reserved=level.reserved,
        available=level.available,
        reorder_point=level.reorder_point,
    )


async def get_stock(*, session: AsyncSession, sku: str) -> StockOut:
    level = await levels.get_stock(session, sku=sku)
    if level is None:
        raise ProductNotFound(sku)
    return stock_out(level)


async def adjust_stock(
    *, session: AsyncSession, sku: str, delta: int, reason: str, actor: str
) -> StockOut:
    """Add ``delta`` to on hand (negative removes); refused if it would cut into reserved."""
    async with session.begin():
        locked = await levels.lock_stock(session, skus=[sku])
        if not locked:
            raise ProductNotFound(sku)
        level = locked[0]
        if level.on_hand + delta < level.reserved:
            raise StockBelowReserved(sku, level.on_hand, level.reserved, delta)
        level.on_hand += delta
        low = low_stock_events([level])
        await write_stock(
            session,
            changes=[StockChange(sku, delta, 0, level.low_stock_alerted)],
            movements=[Movement(sku, MovementKind.ADJUSTMENT, delta, 0, reason, actor)],
        )
        await outbox.add_many(session, [Envelope.new(event) for event in low])
        return stock_out(level)


async def list_low_stock(
    *, session: AsyncSession, settings: InventorySettings, limit: int, cursor: str | None
) -> StockPage:
    cursors = settings.cursor_codec
    rows = await levels.low_stock_page(
        session, after=cursors.after(LOW_STOCK_CURSOR, cursor), limit=limit + 1
    )
    page, next_cursor = cursors.page(
        LOW_STOCK_CURSOR, rows, limit=limit, position=lambda level: level.sku
    )
    return StockPage(items=[stock_out(level) for level in page], next_cursor=next_cursor)


async def open_stock(
    *, session: AsyncSession, sku: str, on_hand: int, reorder_point: int, actor: str
) -> None:
    """The stock row of a product just created (and flushed), its initial stock a ledger
    entry. Its alarm starts in the state its stock implies: creation is not a crossing, so
    it emits no ``stock_low`` of its own."""
    alerted = on_hand <= reorder_point
    session.add(StockItem(sku=sku, on_hand=on_hand, reserved=0, low_stock_alerted=alerted))
    await session.flush()
    if on_hand:
        initial = Movement(sku, MovementKind.ADJUSTMENT, on_hand, 0, INITIAL_STOCK_REASON, actor)
        await write_stock(session, movements=[initial])


async def recheck_low_stock(*, session: AsyncSession, sku: str) -> list[StockLow]:
    """The low-stock rule after the product's reorder point changed (and was flushed): a new
    point can put the product under it, or lift it out, which is a crossing too."""
    [level] = await levels.lock_stock(session, skus=[sku])
    alerted = level.low_stock_alerted
    low = low_stock_events([level])
    if level.low_stock_alerted != alerted:
        await write_stock(session, changes=[StockChange(sku, 0, 0, level.low_stock_alerted)])
    return low
