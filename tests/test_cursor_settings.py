"""Every service that issues cursors refuses, in production, to sign them with a placeholder."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.cursors import CursorSettings
from tests.services import SERVICES, Service

ISSUERS = [service for service in SERVICES if issubclass(service.settings_class, CursorSettings)]


def test_the_three_services_with_lists_issue_signed_cursors() -> None:
    assert {service.name for service in ISSUERS} == {"inventory", "orders", "payments"}


@pytest.mark.parametrize("service", ISSUERS, ids=lambda service: service.name)
def test_production_refuses_to_start_without_a_real_cursor_key(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every other secret is real: only the cursor key is missing (its default placeholder).
    monkeypatch.setenv("COMMERCE_ENVIRONMENT", "production")
    monkeypatch.setenv("COMMERCE_DB_PASSWORD", "a-real-database-password")
    monkeypatch.setenv("COMMERCE_BROKER_URL", "amqp://shop:a-real-broker-password@rabbit/")
    monkeypatch.delenv("COMMERCE_CURSOR_KEYS", raising=False)
    with pytest.raises(ValidationError, match=r"cursor_keys\[0\]"):
        service.settings_class()
    monkeypatch.setenv("COMMERCE_CURSOR_KEYS", "k" * 40)
    assert isinstance(service.settings_class(), CursorSettings)
