"""The payments HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from payments.config import PaymentsSettings, get_settings
from payments.payment.router import router as payment_router
from shared.app import create_service_app


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    # The app only reads: payments change through the worker's consumers, and the worker's
    # relay publishes their events, so the app needs neither broker nor relay.
    return create_service_app(
        settings or get_settings(), title="Payments", routers=[payment_router]
    )
