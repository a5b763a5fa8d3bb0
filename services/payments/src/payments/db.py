"""Metadata of the payments schema: every table of this service lives there."""

from sqlalchemy.orm import DeclarativeBase

from payments.config import PaymentsSettings
from shared.db import service_metadata

SCHEMA = PaymentsSettings.service_name
metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata
