"""A provider that counts what it is asked and what fails, around the real one.

Wrapped once where the worker builds its provider, so every caller (the request handler, the
refunds and both reconcilers) is counted, whatever provider is plugged in.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from payments import metrics
from payments.provider.base import (
    Charge,
    PaymentProvider,
    ProviderUnavailableError,
    Refund,
    RefundRefusedError,
)
from shared.contracts import Money

T = TypeVar("T")


class MeteredProvider:
    def __init__(self, provider: PaymentProvider) -> None:
        self.provider = provider

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        return await _metered(
            "charge",
            lambda: self.provider.authorize_and_capture(
                idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
            ),
        )

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        return await _metered(
            "refund",
            lambda: self.provider.refund(
                idempotency_key=idempotency_key, charge_id=charge_id, amount=amount
            ),
        )

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        return await _metered(
            "find_charge", lambda: self.provider.find_charge(idempotency_key=idempotency_key)
        )


async def _metered(operation: str, call: Callable[[], Awaitable[T]]) -> T:
    metrics.PROVIDER_REQUESTS.labels(operation).inc()
    started = time.perf_counter()
    try:
        return await call()
    except ProviderUnavailableError:
        metrics.PROVIDER_ERRORS.labels(operation, "unavailable").inc()
        raise
    except RefundRefusedError:
        metrics.PROVIDER_ERRORS.labels(operation, "refused").inc()
        raise
    except Exception:
        metrics.PROVIDER_ERRORS.labels(operation, "unexpected").inc()
        raise
    finally:
        metrics.PROVIDER_LATENCY.labels(operation).observe(time.perf_counter() - started)
