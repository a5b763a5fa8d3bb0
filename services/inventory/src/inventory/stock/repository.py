"""Stock, ledger and reservation queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.catalog.models import Product
from inventory.stock.models import (
    MovementKind,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockItem,
    StockMovement,
)
from shared.ids import new_id


@dataclass(frozen=True)
class LockedStock:
    """A stock row locked for this transaction, with what the rules need of its product."""

    item: StockItem
    active: bool
    reorder_point: int


@dataclass(frozen=True)
class Movement:
    sku: str
    kind: MovementKind
    on_hand_delta: int
    reserved_delta: int
    reason: str
    reference: str | None


async def lock_stock(session: AsyncSession, *, skus: Iterable[str]) -> list[LockedStock]:
    """Lock the stock rows of ``skus`` in sku order; unknown skus are simply absent.

    Every transaction that locks several stock rows goes through here, so all take their
    locks in the same order and two multi-line orders can never deadlock: the row lock
    follows the sort because Postgres locks rows as the sorted result is produced.
    """
    wanted = sorted(set(skus))
    if not wanted:
        return []
    statement = (
        select(StockItem, Product.active, Product.reorder_point)
        .join(Product, Product.sku == StockItem.sku)
        .where(StockItem.sku.in_(wanted))
        .order_by(StockItem.sku)
        .with_for_update(of=StockItem)
        # A row read earlier in this session must show the locked, current values.
        .execution_options(populate_existing=True)
    )
    rows = (await session.execute(statement)).all()
    return [LockedStock(item=row[0], active=row[1], reorder_point=row[2]) for row in rows]


async def get_stock(session: AsyncSession, *, sku: str) -> tuple[StockItem, int] | None:
    statement = (
        select(StockItem, Product.reorder_point)
        .join(Product, Product.sku == StockItem.sku)
        .where(StockItem.sku == sku)
    )
    row = (await session.execute(statement)).first()
    return (row[0], int(row[1])) if row is not None else None


async def low_stock_page(
    session: AsyncSession, *, after: str | None, limit: int
) -> Sequence[tuple[StockItem, int]]:
    """Active products whose available stock is at or under their reorder point."""
    statement = (
        select(StockItem, Product.reorder_point)
        .join(Product, Product.sku == StockItem.sku)
        .where(Product.active, StockItem.on_hand - StockItem.reserved <= Product.reorder_point)
        .order_by(StockItem.sku)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(StockItem.sku > after)
    rows = (await session.execute(statement)).all()
    return [(row[0], int(row[1])) for row in rows]


async def record_movements(session: AsyncSession, movements: Sequence[Movement]) -> None:
    if not movements:
        return
    await session.execute(
        insert(StockMovement),
        [
            {
                "id": new_id(),
                "sku": m.sku,
                "kind": m.kind.value,
                "on_hand_delta": m.on_hand_delta,
                "reserved_delta": m.reserved_delta,
                "reason": m.reason,
                "reference": m.reference,
            }
            for m in movements
        ],
    )


async def claim_reservation(
    session: AsyncSession, *, order_id: uuid.UUID, status: ReservationStatus, ttl: timedelta | None
) -> bool:
    """Insert the order's reservation; False if the order already has one (the key decides,
    so two deliveries of the same order racing each other cannot both reserve)."""
    statement = (
        pg_insert(Reservation)
        .values(
            order_id=order_id,
            status=status.value,
            expires_at=func.now() + ttl if ttl is not None else None,
        )
        .on_conflict_do_nothing(index_elements=[Reservation.order_id])
        .returning(Reservation.order_id)
    )
    return (await session.execute(statement)).first() is not None


async def lock_reservation(session: AsyncSession, *, order_id: uuid.UUID) -> Reservation | None:
    statement = (
        select(Reservation)
        .where(Reservation.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_due_reservations(session: AsyncSession, *, limit: int) -> list[Reservation]:
    """Live reservations past their deadline, locked; rows another sweeper holds are skipped,
    so concurrent sweepers share the work and never release the same reservation twice."""
    statement = (
        select(Reservation)
        .where(
            Reservation.status == ReservationStatus.RESERVED.value,
            Reservation.expires_at <= func.now(),
        )
        .order_by(Reservation.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def set_reservation_status(
    session: AsyncSession, *, order_ids: Sequence[uuid.UUID], status: ReservationStatus
) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.order_id.in_(order_ids))
        .values(status=status.value, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def add_reservation_lines(
    session: AsyncSession, *, order_id: uuid.UUID, quantities: dict[str, int]
) -> None:
    await session.execute(
        insert(ReservationLine),
        [{"order_id": order_id, "sku": sku, "quantity": q} for sku, q in quantities.items()],
    )


async def reservation_lines(
    session: AsyncSession, *, order_ids: Sequence[uuid.UUID]
) -> list[ReservationLine]:
    statement = (
        select(ReservationLine)
        .where(ReservationLine.order_id.in_(order_ids))
        .order_by(ReservationLine.order_id, ReservationLine.sku)
    )
    return list((await session.execute(statement)).scalars())
