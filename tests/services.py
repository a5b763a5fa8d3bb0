"""The platform's processes as the cross-service tests see them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config import GatewaySettings
from inventory.config import InventorySettings
from orders.config import OrdersSettings
from payments.config import PaymentsSettings
from shared.settings import BaseServiceSettings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Service:
    name: str
    settings_class: type[BaseServiceSettings]
    directory: Path

    @property
    def alembic_ini(self) -> Path:
        return self.directory / "alembic.ini"

    @property
    def default_port(self) -> int:
        port: int = self.settings_class.model_fields["port"].default
        return port


SERVICES = (
    Service("gateway", GatewaySettings, ROOT / "gateway"),
    Service("inventory", InventorySettings, ROOT / "services" / "inventory"),
    Service("orders", OrdersSettings, ROOT / "services" / "orders"),
    Service("payments", PaymentsSettings, ROOT / "services" / "payments"),
)
