"""Every table of the service, imported together so the metadata knows them all (Alembic's
env.py and the tests import this module)."""

from payments.db import metadata
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
    "metadata",
]
