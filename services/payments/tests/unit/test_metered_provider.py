"""The provider's calls and errors, counted around whatever provider is plugged in."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from payments.provider import (
    Charge,
    PaymentProvider,
    ProviderUnavailableError,
    Refund,
    RefundRefusedError,
)
from payments.provider.metered import MeteredProvider
from shared.contracts import Money

AMOUNT = Money(amount=1000, currency="USD")


class Scripted:
    """Answers or raises what it is told, for every operation."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def _answer(self) -> None:
        if self.error is not None:
            raise self.error

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        self._answer()
        return Charge(charge_id="ch_1", amount=amount)

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        self._answer()
        return Refund(refund_id="re_1", charge_id=charge_id, amount=amount)

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        self._answer()
        return None


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_answers_pass_through_and_every_call_is_counted() -> None:
    provider: PaymentProvider = MeteredProvider(Scripted())
    before = {
        operation: sample("payments_provider_requests_total", operation=operation)
        for operation in ("charge", "refund", "find_charge")
    }
    durations = sample("payments_provider_request_duration_seconds_count", operation="charge")

    charge = await provider.authorize_and_capture(
        idempotency_key="k", amount=AMOUNT, payment_token="tok_visa"
    )
    assert charge == Charge(charge_id="ch_1", amount=AMOUNT)
    assert await provider.refund(idempotency_key="k", charge_id="ch_1", amount=AMOUNT)
    assert await provider.find_charge(idempotency_key="k") is None

    for operation, count in before.items():
        assert sample("payments_provider_requests_total", operation=operation) == count + 1
    assert sample("payments_provider_request_duration_seconds_count", operation="charge") == (
        durations + 1
    )


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (ProviderUnavailableError("lost"), "unavailable"),
        (RefundRefusedError("unknown charge"), "refused"),
        (RuntimeError("a bug"), "unexpected"),
    ],
)
async def test_errors_are_counted_by_kind_and_raised_unchanged(
    error: Exception, label: str
) -> None:
    provider = MeteredProvider(Scripted(error))
    before = sample("payments_provider_errors_total", operation="refund", error=label)

    with pytest.raises(type(error)) as raised:
        await provider.refund(idempotency_key="k", charge_id="ch_1", amount=AMOUNT)

    assert raised.value is error
    assert sample("payments_provider_errors_total", operation="refund", error=label) == before + 1
