"""Metadata of the inventory schema: every table of this service lives there."""

from sqlalchemy.orm import DeclarativeBase

from inventory.config import InventorySettings
from shared.db import service_metadata

SCHEMA = InventorySettings.service_name
metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata
