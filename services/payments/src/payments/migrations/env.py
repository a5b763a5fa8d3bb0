"""Alembic environment of the payments schema (see shared.migrations)."""

from alembic import context

import payments.models  # noqa: F401  (registers every table on the metadata)
from payments.config import get_settings
from payments.db import metadata
from shared.migrations import run_migrations

run_migrations(metadata, context.config.attributes.get("settings") or get_settings())
