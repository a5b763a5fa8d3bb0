"""What the service needs from a payment provider, whichever provider it is.

Both operations take an idempotency key: asking again with the same key returns the first
answer and never moves money twice. The service uses the order id for a charge and the
payment id for its refund, so a retry after a crash asks the same question again. The same
key also finds a charge again without making one (``find_charge``): how the reconciler
learns what became of a payment left pending, with no card token to charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.contracts import Money


class DeclineCode(StrEnum):
    """A definitive "no" from the provider; asking again will not change it."""

    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_PAYMENT_METHOD = "invalid_payment_method"


@dataclass(frozen=True, slots=True)
class Charge:
    """The provider's answer to a charge: captured (``charge_id``) or declined (``decline``)."""

    charge_id: str
    amount: Money
    decline: DeclineCode | None = None

    @property
    def succeeded(self) -> bool:
        return self.decline is None


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    charge_id: str
    amount: Money


class ProviderError(Exception):
    """Base of what a provider raises; messages never carry card or token data."""


class ProviderUnavailableError(ProviderError):
    """Transient: the request may or may not have been processed. Ask again, same key."""


class RefundRefusedError(ProviderError):
    """The provider will never make this refund (unknown or declined charge, amount too big)."""


class PaymentProvider(Protocol):
    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        """Charge ``amount`` to the payment method ``payment_token`` stands for, at most once
        per ``idempotency_key``; raise ``ProviderUnavailableError`` when it may be retried."""
        ...

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        """Return ``amount`` of a captured charge, at most once per ``idempotency_key``."""
        ...

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        """The answer given to a charge under ``idempotency_key`` (captured or declined), or
        None if no charge was ever made under it; never charges. Raise
        ``ProviderUnavailableError`` when the provider cannot tell now."""
        ...
