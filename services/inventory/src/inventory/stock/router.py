"""Stock HTTP routes; every one is for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from inventory.deps import SessionDep, SettingsDep
from inventory.products.models import SKU_PATTERN
from inventory.stock import service
from inventory.stock.schemas import StockAdjustmentIn, StockOut, StockPage
from shared.auth import AdminDep
from shared.cursors import CursorQuery, LimitQuery
from shared.openapi import problem_responses

# Admins only (401 without a token, 403 for anyone else); 503 while the database is out.
router = APIRouter(prefix="/api/v1", tags=["stock"], responses=problem_responses(401, 403, 503))

# The pattern excludes lowercase, so /inventory/low-stock can never be taken for a sku.
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]


@router.post(
    "/products/{sku}/stock-adjustments",
    status_code=201,
    responses=problem_responses(404, (409, "On hand would fall below what is reserved."), 413),
)
async def adjust_stock(
    sku: SkuPath, adjustment: StockAdjustmentIn, session: SessionDep, admin: AdminDep
) -> StockOut:
    return await service.adjust_stock(
        session=session,
        sku=sku,
        delta=adjustment.delta,
        reason=adjustment.reason,
        actor=str(admin.user_id),
    )


# Declared before /inventory/{sku}: the literal path must win.
@router.get("/inventory/low-stock", responses=problem_responses(400))
async def list_low_stock(
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> StockPage:
    """Active products whose available stock is at or under their reorder point."""
    return await service.list_low_stock(
        session=session, settings=settings, limit=limit, cursor=cursor
    )


@router.get("/inventory/{sku}", responses=problem_responses(404))
async def read_stock(sku: SkuPath, session: SessionDep, admin: AdminDep) -> StockOut:
    return await service.get_stock(session=session, sku=sku)
