"""The service's outbox and inbox tables, and the one ``Outbox`` that writes events."""

from __future__ import annotations

from inventory.db import Base
from shared.messaging import InboxMixin, Outbox, OutboxMixin


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(InboxMixin, Base):
    pass


outbox = Outbox(OutboxEvent)
