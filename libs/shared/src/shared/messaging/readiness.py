"""Broker readiness for ``/health/ready``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.health import ReadinessCheck
from shared.messaging.broker import Broker


def register_broker_check(app: FastAPI, broker: Broker, *, name: str = "broker") -> None:
    """Add the broker to the app's readiness checks (call from an ``extra_lifespan``)."""
    checks: dict[str, ReadinessCheck] = app.state.readiness_checks
    checks[name] = broker.check
