"""Alembic environment of the gateway schema (see shared.migrations)."""

from alembic import context

import gateway.identity.models  # noqa: F401  (registers every table on the metadata)
from gateway.config import get_settings
from gateway.db import metadata
from shared.migrations import run_migrations

run_migrations(metadata, context.config.attributes.get("settings") or get_settings())
