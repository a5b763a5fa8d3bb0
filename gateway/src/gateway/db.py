"""Metadata of the gateway schema: every table of this service lives there."""

from sqlalchemy.orm import DeclarativeBase

from gateway.config import GatewaySettings
from shared.db import service_metadata

SCHEMA = GatewaySettings.service_name
metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata
