"""Alembic environment of the gateway schema (see shared.migrations)."""

from alembic import context

from gateway.config import get_settings
from gateway.db import metadata
from shared.migrations import run_migrations

run_migrations(metadata, context.config.attributes.get("settings") or get_settings())
