"""Alembic environment of the orders schema (see shared.migrations)."""

from alembic import context

import orders.models  # noqa: F401  (registers every table on the metadata)
from orders.config import get_settings
from orders.db import metadata
from shared.migrations import run_migrations

run_migrations(metadata, context.config.attributes.get("settings") or get_settings())
