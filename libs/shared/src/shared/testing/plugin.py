"""pytest plugin: one fresh database and one broker namespace per test run.

At configure time the run gets a unique id; ``COMMERCE_DB_NAME``,
``COMMERCE_BROKER_NAMESPACE`` and ``COMMERCE_ENVIRONMENT`` are set before any settings are
built, so every service (and every process a test starts) uses the run's own database,
queues and Redis keys. The ``database`` fixture creates that database with the schemas and
roles of ``commerce_db_init_sql``, applies every Alembic config listed in
``commerce_migrations``, and drops it at the end of the run; the queues and keys are deleted
when the run ends.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.dbadmin import create_database, drop_database, run_script
from shared.testing.broker import delete_broker_namespace, heal_dead_letter_supervisor
from shared.testing.migrations import migrate
from shared.testing.redis_keys import delete_redis_namespace

RUN_ID = uuid.uuid4().hex[:10]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("commerce_db_init_sql", "SQL that creates the schemas and roles", default="")
    parser.addini("commerce_migrations", "Alembic configs to apply, in order", type="paths")
    parser.addoption(
        "--keep-database", action="store_true", help="do not drop the run's test database"
    )


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COMMERCE_DB_NAME"] = f"commerce_test_{RUN_ID}"
    os.environ["COMMERCE_BROKER_NAMESPACE"] = f"test-{RUN_ID}"
    os.environ["COMMERCE_ENVIRONMENT"] = "test"
    # Workers started by tests open no probe port unless a test asks for one
    # (<SERVICE>_WORKER_PORT), so concurrent runs never fight over the development ports.
    os.environ["COMMERCE_WORKER_PORT"] = "0"


async def _prepare(name: str, init_sql: str) -> None:
    await create_database(name)
    await run_script(name, init_sql)


@pytest.fixture(scope="session")
def db_init_sql(pytestconfig: pytest.Config) -> str:
    """The SQL that gives a database the platform's schemas and roles."""
    path = Path(pytestconfig.rootpath, str(pytestconfig.getini("commerce_db_init_sql")))
    return path.read_text()


@pytest.fixture(scope="session")
def database(pytestconfig: pytest.Config, db_init_sql: str) -> Iterator[str]:
    """The run's database, prepared and migrated to head; its name."""
    name = os.environ["COMMERCE_DB_NAME"]
    _run(_prepare(name, db_init_sql))
    try:
        for alembic_ini in pytestconfig.getini("commerce_migrations"):
            migrate(Path(alembic_ini))
        yield name
    finally:
        if not pytestconfig.getoption("--keep-database"):
            _run(drop_database(name))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete every exchange and queue the run declared, and its keys in Redis: tests clean up
    after themselves, and this catches what a failed or interrupted test left behind."""
    namespace = os.environ["COMMERCE_BROKER_NAMESPACE"]
    _run(delete_broker_namespace(namespace))
    _run(delete_redis_namespace(namespace))
    _run(_heal_broker())


async def _heal_broker() -> None:
    await heal_dead_letter_supervisor()  # see its docstring: a restart test can leave it dead


def _run(coroutine: Coroutine[Any, Any, object]) -> None:
    # Session setup happens outside pytest-asyncio's loop; a private loop in a thread keeps
    # the two apart.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()
