"""Alembic environment of the inventory schema (see shared.migrations)."""

from alembic import context
from shared.migrations import run_migrations

from inventory.config import get_settings
from inventory.db import metadata

run_migrations(context, metadata, context.config.attributes.get("settings") or get_settings())
