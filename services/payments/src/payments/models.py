"""Every mapped table of the service, imported in one place (Alembic's env.py uses it)."""

from payments.events import OutboxEvent, ProcessedEvent
from payments.payment.models import OwedRefund, Payment
from payments.provider.models import FakeProviderCharge, FakeProviderRefund

__all__ = [
    "FakeProviderCharge",
    "FakeProviderRefund",
    "OutboxEvent",
    "OwedRefund",
    "Payment",
    "ProcessedEvent",
]
