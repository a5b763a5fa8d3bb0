"""Every service's migrations apply from empty and downgrade back to empty, in its own schema,
as its own role, which can touch nothing else."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from shared.dbadmin import admin_url, create_database, drop_database, run_script
from shared.testing import assert_models_match_migrations, migrate
from tests.services import SERVICES, Service


@pytest.fixture(scope="module")
def scratch_database(db_init_sql: str) -> Iterator[str]:
    name = os.environ["COMMERCE_DB_NAME"] + "_migrations"

    async def prepare() -> None:
        await create_database(name)
        await run_script(name, db_init_sql)

    asyncio.run(prepare())
    try:
        yield name
    finally:
        asyncio.run(drop_database(name))


def _connect_url(database: str, user: str) -> str:
    base = admin_url().rpartition("/")[0].replace("postgres@", f"{user}@", 1)
    return f"{base}/{database}"


async def _tables(database: str, schema: str) -> list[str]:
    connection = await asyncpg.connect(_connect_url(database, "postgres"))
    try:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
        )
        return [row["tablename"] for row in rows]
    finally:
        await connection.close()


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_migrations_apply_from_empty_and_downgrade_to_empty(
    service: Service, scratch_database: str
) -> None:
    settings = service.settings_class(db_name=scratch_database)
    assert asyncio.run(_tables(scratch_database, service.name)) == []

    migrate(service.alembic_ini, settings=settings)
    upgraded = asyncio.run(_tables(scratch_database, service.name))
    assert "alembic_version" in upgraded

    migrate(service.alembic_ini, revision="base", downgrade=True, settings=settings)
    assert asyncio.run(_tables(scratch_database, service.name)) == ["alembic_version"]

    migrate(service.alembic_ini, settings=settings)  # and up again: downgrades leave no debris
    assert asyncio.run(_tables(scratch_database, service.name)) == upgraded


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
async def test_a_service_role_can_use_only_its_own_schema(service: Service, database: str) -> None:
    connection = await asyncpg.connect(_connect_url(database, service.name))
    try:
        await connection.execute("CREATE TABLE probe_own_schema (id int)")
        await connection.execute("DROP TABLE probe_own_schema")
        for other in SERVICES:
            if other.name == service.name:
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.fetch(f"SELECT * FROM {other.name}.alembic_version")  # noqa: S608
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE TABLE public.probe_public (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE SCHEMA probe_schema")
    finally:
        await connection.close()


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_models_and_migrations_describe_the_same_schema(service: Service, database: str) -> None:
    assert_models_match_migrations(service.alembic_ini)


def test_a_migration_waiting_on_a_busy_table_gives_up_instead_of_stalling_it(
    scratch_database: str,
) -> None:
    # A DDL statement queued behind a long transaction would hold up every later query of
    # its table: it waits MIGRATION_LOCK_TIMEOUT at most, then fails (and its Job retries).
    orders = next(service for service in SERVICES if service.name == "orders")
    settings = orders.settings_class(db_name=scratch_database)
    migrate(orders.alembic_ini, settings=settings)
    migrate(orders.alembic_ini, revision="-1", downgrade=True, settings=settings)
    holding = asyncio.new_event_loop()
    holder = holding.run_until_complete(asyncpg.connect(_connect_url(scratch_database, "postgres")))
    upgrading = ThreadPoolExecutor(max_workers=1)
    try:
        holding.run_until_complete(holder.execute("BEGIN"))
        holding.run_until_complete(holder.execute("LOCK TABLE orders.orders IN ACCESS SHARE MODE"))
        upgrade = upgrading.submit(migrate, orders.alembic_ini, settings=settings)
        with pytest.raises(Exception, match="lock timeout"):
            upgrade.result(timeout=60)  # the lock is held for as long as this waits
    finally:
        holding.run_until_complete(holder.execute("ROLLBACK"))
        holding.run_until_complete(holder.close())
        holding.close()
        upgrading.shutdown(wait=True)
    migrate(orders.alembic_ini, settings=settings)  # the table free: it applies
