"""The service's outbox and inbox tables, and the outbox every service function writes to."""

from __future__ import annotations

from payments.db import Base
from shared.messaging import InboxMixin, Outbox, OutboxMixin


class OutboxEvent(OutboxMixin, Base):
    """Events waiting for the relay (``payments.outbox``)."""


class ProcessedEvent(InboxMixin, Base):
    """Events this service's consumers have handled (``payments.processed_events``)."""


outbox = Outbox(OutboxEvent)
