"""Metadata of the orders schema: every table of this service lives there."""

from sqlalchemy.orm import DeclarativeBase

from orders.config import OrdersSettings
from shared.db import service_metadata

SCHEMA = OrdersSettings.service_name
metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata
