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
# The product code: what ships, without tests (which live beside each package's src/).
PRODUCT_SOURCES = (
    ROOT / "libs" / "shared" / "src",
    *sorted((ROOT / "services").glob("*/src")),
    ROOT / "gateway" / "src",
)


def product_modules(*, migrations: bool) -> list[Path]:
    """Every module of the product code, the services' migrations with them or not."""
    return sorted(
        path
        for root in PRODUCT_SOURCES
        for path in root.rglob("*.py")
        if migrations or "migrations" not in path.relative_to(root).parts
    )


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
