"""Settings of this process: `<SERVICE>_<FIELD>`, then `COMMERCE_<FIELD>`, then defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.cursors import CursorSettings


class OrdersSettings(CursorSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    service_name: ClassVar[str] = "orders"

    port: int = 8002
    worker_port: int = 8102  # the worker's probe: /health/*, /metrics
    db_user: str = "orders"

    # The one currency the store sells in; a catalog price in another is not for sale.
    store_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """The one currency orders are priced in; a catalog price in another is not for sale."""
    # How long an Idempotency-Key is remembered; after that the key may be reused.
    idempotency_retention_hours: float = Field(default=24.0, gt=0)
    """How long an `Idempotency-Key` is remembered."""
    # An order still pending (no answer from inventory) this long is cancelled by the sweeper.
    pending_timeout_seconds: float = Field(default=300.0, gt=0)
    """A pending order (no answer from inventory) older than this is cancelled by the sweeper."""
    # An order awaiting payment this long has its payment requested again, then is cancelled.
    awaiting_payment_timeout_seconds: float = Field(default=300.0, gt=0)
    """Wait for a payment outcome before requesting payment again."""
    # Payment requests per order (the first included) before the sweeper gives up and cancels.
    payment_request_attempts: int = Field(default=3, ge=1)
    """Payment requests per order (the first included) before the sweeper cancels it."""
    # Payment is requested, first or again, only until this long before the reservation
    # expires (the expires_at of stock_reserved): a charge asked for later could land after
    # inventory released the stock. An order that may not be asked for is cancelled instead.
    payment_request_margin_seconds: float = Field(default=120.0, ge=0)
    """Payment is requested (first or again) only until this long before the reservation's
    `expires_at`; a `stock_reserved` arriving later, or a sweep that may not ask again, cancels
    the order."""
    # An order refund_pending this long, with no payment_refunded arrived, has its refund
    # requested again, and again at this interval until the refund is announced (a refund
    # owed is never given up on). Payments refunds once however often it is asked, and
    # announces a refund made already again. Longer than the normal cadence of payments'
    # refund retries (and than any queue backlog worth waiting out), so it asks again only
    # when an announcement was lost, not while a refund is still being made.
    refund_pending_timeout_seconds: float = Field(default=600.0, gt=0)
    """An order `refund_pending` this long with no `payment_refunded` has its refund requested
    again, then again at this interval until the refund is announced (never given up); keep it
    above the payments refund reconciler's pauses (docs/saga.md)."""
    # How often each worker looks for stuck orders, and how many it takes per transaction.
    sweeper_interval_seconds: float = Field(default=30.0, gt=0)
    """Pause between two sweeps of each worker."""
    sweeper_batch_size: int = Field(default=100, ge=1)
    """Stuck orders claimed per sweeper transaction."""


@lru_cache(maxsize=1)
def get_settings() -> OrdersSettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return OrdersSettings()
