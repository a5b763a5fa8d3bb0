"""GET /payments and GET /payments/{id}: a customer's own payments, every payment for an
admin."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from payments.payment import repository
from payments.payment.exceptions import PaymentNotFound
from payments.payment.models import Payment
from payments.payment.schemas import PaymentOut, PaymentPage
from shared.auth import Principal
from shared.cursors import CursorCodec


async def get_payment(
    *, session: AsyncSession, payment_id: uuid.UUID, principal: Principal
) -> Payment:
    """The payment if the caller may see it (theirs, or any for an admin); 404 otherwise."""
    payment = await repository.get(session, payment_id)
    if payment is None or not (principal.is_admin or payment.user_id == principal.user_id):
        raise PaymentNotFound("No payment with this id.")
    return payment


PAYMENTS_CURSOR = "payments"


async def list_payments(
    *,
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID | None,
    cursors: CursorCodec,
    cursor: str | None,
    limit: int,
) -> PaymentPage:
    """The caller's payments (an admin's: everyone's), newest first, one page."""
    rows = await repository.page(
        session,
        user_id=None if principal.is_admin else principal.user_id,
        order_id=order_id,
        before=cursors.after_id(PAYMENTS_CURSOR, cursor),
        limit=limit + 1,
    )
    items, next_cursor = cursors.page(
        PAYMENTS_CURSOR, rows, limit=limit, position=lambda payment: payment.id
    )
    return PaymentPage(items=[PaymentOut.of(payment) for payment in items], next_cursor=next_cursor)
