"""Errors the payment domain raises on purpose; each answers as problem+json."""

from __future__ import annotations

from shared.errors import DomainError


class PaymentNotFound(DomainError):
    """No such payment, or not the caller's: both answer the same, so ids leak nothing."""

    status = 404
    title = "Payment not found"
    type = "/problems/payment-not-found"
