"""HTTP routes of payments: read-only; payments are made by events, never by a client."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from payments.deps import SessionDep, SettingsDep
from payments.payment import reading
from payments.payment.schemas import PaymentOut, PaymentPage
from shared.auth import PrincipalDep
from shared.cursors import CursorQuery, LimitQuery
from shared.openapi import problem_responses

# Every route needs a valid token and reads the database (503 while it is out).
router = APIRouter(
    prefix="/api/v1/payments", tags=["payments"], responses=problem_responses(401, 503)
)


@router.get("", response_model=PaymentPage, responses=problem_responses(400))
async def list_payments(
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    order_id: uuid.UUID | None = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> PaymentPage:
    """The caller's payments (an admin sees everyone's), newest first."""
    return await reading.list_payments(
        session=session,
        principal=principal,
        order_id=order_id,
        cursors=settings.cursor_codec,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/{payment_id}",
    response_model=PaymentOut,
    responses=problem_responses((404, "No such payment, or not the caller's.")),
)
async def get_payment(
    payment_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> PaymentOut:
    """One payment; another customer's answers 404, exactly like a missing one."""
    payment = await reading.get_payment(session=session, payment_id=payment_id, principal=principal)
    return PaymentOut.of(payment)
