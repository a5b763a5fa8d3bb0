"""Alembic environment of the inventory schema (see shared.migrations)."""

from alembic import context

import inventory.models  # noqa: F401  (maps every table onto the metadata autogenerate reads)
from inventory.config import get_settings
from inventory.db import metadata
from shared.migrations import run_migrations

run_migrations(metadata, context.config.attributes.get("settings") or get_settings())
