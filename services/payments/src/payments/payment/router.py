"""HTTP routes of payments: read-only; payments are made by events, never by a client."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from payments.deps import SessionDep
from payments.payment import service
from payments.payment.schemas import Cursor, PaymentOut, PaymentPage, encode_cursor
from shared.auth import PrincipalDep

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


@router.get("", response_model=PaymentPage)
async def list_payments(
    session: SessionDep,
    principal: PrincipalDep,
    order_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> PaymentPage:
    """The caller's payments (an admin sees everyone's), newest first."""
    page = await service.list_payments(
        session=session, principal=principal, order_id=order_id, after=cursor, limit=limit
    )
    return PaymentPage(
        items=[PaymentOut.of(payment) for payment in page.items],
        next_cursor=encode_cursor(page.next_after) if page.next_after else None,
    )


@router.get("/{payment_id}", response_model=PaymentOut)
async def get_payment(
    payment_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> PaymentOut:
    """One payment; another customer's answers 404, exactly like a missing one."""
    payment = await service.get_payment(session=session, payment_id=payment_id, principal=principal)
    return PaymentOut.of(payment)
