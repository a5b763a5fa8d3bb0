"""Alembic environment of the payments schema (see shared.migrations)."""

from alembic import context
from shared.migrations import run_migrations

from payments.config import get_settings
from payments.db import metadata

run_migrations(context, metadata, context.config.attributes.get("settings") or get_settings())
