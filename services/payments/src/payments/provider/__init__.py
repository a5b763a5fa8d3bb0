"""The payment provider adapter: the interface the service calls, and the shipped fake."""

from payments.provider.base import (
    Charge,
    DeclineCode,
    PaymentProvider,
    ProviderError,
    ProviderUnavailableError,
    Refund,
    RefundRefusedError,
)
from payments.provider.fake import FakeProvider
from payments.provider.retry import RetryPolicy, with_retries

__all__ = [
    "Charge",
    "DeclineCode",
    "FakeProvider",
    "PaymentProvider",
    "ProviderError",
    "ProviderUnavailableError",
    "Refund",
    "RefundRefusedError",
    "RetryPolicy",
    "with_retries",
]
