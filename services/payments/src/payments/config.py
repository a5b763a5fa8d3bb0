"""Settings of this process: `<SERVICE>_<FIELD>`, then `COMMERCE_<FIELD>`, then defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from payments.backoff import doubling_pause
from shared.cursors import CursorSettings


class PaymentsSettings(CursorSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_")

    service_name: ClassVar[str] = "payments"

    port: int = 8003
    worker_port: int = 8103  # the worker's probe: /health/*, /metrics
    db_user: str = "payments"
    # Requests handled at once, each mostly waiting on the provider. None holds a connection
    # while it waits (prepared handlers), only for its few statements, so this may exceed
    # the pool: a provider taking 200 ms with 32 in flight allows 160 charges a second.
    broker_prefetch: int = Field(default=32, ge=1)
    """Requests in flight per worker (each waits on the provider holding no connection) and the
    most one batch takes."""

    store_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """The one currency charged; a request in another fails as `unsupported_currency`."""
    # Transient provider errors are retried in the handler, then the payment fails as
    # processing_error: attempts in all, the first pause, and the cap on the doubling pause.
    provider_max_attempts: int = Field(default=4, ge=1, le=20)
    """Provider calls per request before a transient error becomes final."""
    provider_backoff_initial_seconds: float = Field(default=0.2, ge=0)
    """Pause before the first retry; doubled for each next one."""
    provider_backoff_max_seconds: float = Field(default=2.0, ge=0)
    """Cap on the pause between retries."""
    # The shipped fake provider: added latency per call, and the share of calls that fail
    # transiently (for load and fault tests; 0 in normal use).
    fake_provider_latency_ms: int = Field(default=0, ge=0)
    """Latency the fake provider adds to each call (load tests)."""
    fake_provider_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share (0..1) of fake provider calls that fail transiently (fault tests)."""
    # The reconciler: how often each worker looks for payments left pending, how long one
    # must have been pending (since its last attempt) to be looked at, and how many it takes
    # per transaction. The age is well beyond a charge with all its retries and redeliveries:
    # a charge still in progress is never resolved under it.
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    """Pause between two reconciler passes over payments left pending."""
    reconcile_after_seconds: float = Field(default=600.0, gt=0)
    """A payment pending this long since its last attempt is reconciled from the provider; must
    exceed one charge's retry pauses."""
    reconcile_batch_size: int = Field(default=50, ge=1, le=1000)
    """Payments locked and looked up per reconciler transaction (1..1000)."""
    # Refunds the provider could not make when asked are owed: kept in the database and retried
    # by the refund reconciler, the n-th retry after about base * 2**(n-1) seconds (capped,
    # jittered so that owed refunds spread out), until the provider answers. It looks for
    # refunds due every interval, so the interval bounds how late a retry may run.
    refund_backoff_base_seconds: float = Field(default=5.0, gt=0)
    """Pause before the first retry of an owed refund; doubled each retry, jittered down by up to
    half."""
    refund_backoff_max_seconds: float = Field(default=600.0, gt=0)
    """Cap on that pause (at least the base)."""
    refund_reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    """How often each worker retries the refunds owed that are due."""

    @model_validator(mode="after")
    def _reconcile_after_outlasts_a_charge(self) -> PaymentsSettings:
        # The pauses of payments.provider.RetryPolicy.from_settings(self).
        budget = sum(
            doubling_pause(
                retry,
                initial=self.provider_backoff_initial_seconds,
                cap=self.provider_backoff_max_seconds,
            )
            for retry in range(self.provider_max_attempts - 1)
        )
        if self.reconcile_after_seconds <= budget:
            raise ValueError(
                f"reconcile_after_seconds ({self.reconcile_after_seconds}) must exceed the "
                f"provider retry pauses of one charge ({budget:.1f}s): a payment still being "
                "charged would be reconciled"
            )
        return self

    @model_validator(mode="after")
    def _refund_backoff_cap_above_base(self) -> PaymentsSettings:
        if self.refund_backoff_max_seconds < self.refund_backoff_base_seconds:
            raise ValueError(
                f"refund_backoff_max_seconds ({self.refund_backoff_max_seconds}) must be at "
                f"least refund_backoff_base_seconds ({self.refund_backoff_base_seconds})"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> PaymentsSettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return PaymentsSettings()
