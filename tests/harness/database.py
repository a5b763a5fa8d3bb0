"""The platform's own database: created, given its schemas and roles, migrated, dropped.

The run's database (the plugin's ``database`` fixture) is shared with the services' own
tests, which leave unsent outbox rows and queues behind on purpose; the platform's relays
would publish them. The platform gets a sibling database of its own instead, prepared by the
same tooling, so what the journeys and faults count is only what they did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg

from shared.dbadmin import admin_url, create_database, drop_database, run_script
from shared.testing.migrations import migrate
from tests.services import SERVICES


def prepare(name: str, init_sql: str) -> None:
    """Create ``name`` afresh with the platform's schemas and roles, migrated to head."""
    run_in_thread(_recreate(name, init_sql))
    for service in SERVICES:
        migrate(service.alembic_ini, settings=service.settings_class(db_name=name))


async def _recreate(name: str, init_sql: str) -> None:
    await drop_database(name)
    await create_database(name)
    await run_script(name, init_sql)


def drop(name: str) -> None:
    run_in_thread(drop_database(name))


def run_in_thread(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to completion on a private loop, away from pytest-asyncio's."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def superuser_url(name: str) -> str:
    head, _, _ = admin_url().rpartition("/")
    return f"{head}/{name}"


async def connect(name: str) -> asyncpg.Connection:
    """A superuser connection to ``name``: tests may read every schema."""
    return await asyncpg.connect(superuser_url(name))
