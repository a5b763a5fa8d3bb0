"""Alembic environment of the payments schema (see shared.migrations)."""

from alembic import context

from payments.config import get_settings
from payments.tables import metadata  # the tables module imports every model
from shared.migrations import run_migrations

run_migrations(metadata, context.config.attributes.get("settings") or get_settings())
