"""Alembic environment of the orders schema (see shared.migrations)."""

from alembic import context
from shared.migrations import run_migrations

from orders.config import get_settings
from orders.db import metadata

run_migrations(context, metadata, context.config.attributes.get("settings") or get_settings())
