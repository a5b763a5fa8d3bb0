"""The body of every service's Alembic ``env.py``: async, confined to the service's schema.

The version table lives inside the service's schema, and autogenerate only looks at that
schema. The schema itself is created by ``infra/postgres`` (a service's role may not create
schemas), so a missing one is reported plainly instead of as a permission error.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import BaseServiceSettings

VERSION_TABLE = "alembic_version"
MIGRATION_LOCK_TIMEOUT = "5s"


class SchemaMissingError(RuntimeError):
    pass


def run_migrations(metadata: MetaData, settings: BaseServiceSettings) -> None:
    """Called from a service's ``env.py``, while Alembic's ``context`` is set up."""
    schema = settings.db_schema

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name == schema

    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": include_name,
        "compare_type": True,
    }

    if context.is_offline_mode():
        context.configure(
            url=settings.database_url.render_as_string(hide_password=False),
            literal_binds=True,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run_online() -> None:
        # The search path points away from the service's schema (its role's default): were
        # the schema the connection's default, reflection would report its tables under no
        # schema, and autogenerate and `alembic check` would take every table for a new one.
        # Migrations name their schema explicitly.
        # A DDL statement waits for every transaction on its table, and every later query
        # of the table waits behind it: on a live database a migration gives up after
        # MIGRATION_LOCK_TIMEOUT rather than stall the services, and its Job tries again.
        engine = create_async_engine(
            settings.database_url,
            poolclass=pool.NullPool,
            connect_args={
                "server_settings": {
                    "search_path": "public",
                    "lock_timeout": MIGRATION_LOCK_TIMEOUT,
                }
            },
        )
        try:
            async with engine.connect() as connection:
                found = await connection.scalar(
                    text("SELECT count(*) FROM pg_namespace WHERE nspname = :schema"),
                    {"schema": schema},
                )
                if not found:
                    raise SchemaMissingError(
                        f"schema {schema!r} does not exist in {settings.db_name!r}: "
                        "prepare the database first (make db)"
                    )
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run_online())
