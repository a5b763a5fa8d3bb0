"""Alembic environment of the gateway schema (see shared.migrations)."""

from alembic import context
from shared.migrations import run_migrations

from gateway.config import get_settings
from gateway.db import metadata

run_migrations(context, metadata, context.config.attributes.get("settings") or get_settings())
