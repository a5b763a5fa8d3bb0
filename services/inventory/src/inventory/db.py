"""Metadata of the inventory schema: every table of this service lives there."""

from shared.db import service_metadata
from sqlalchemy.orm import DeclarativeBase

from inventory.config import InventorySettings

SCHEMA = InventorySettings.service_name
metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata
