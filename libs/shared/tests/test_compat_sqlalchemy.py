"""The SQLAlchemy internals ``shared.compat.sqlalchemy`` builds on are still there, unchanged.

The behaviour through ``shared.db.driver_connection`` is tested in ``test_db.py``; these fail
first, and say why, when an upgrade of SQLAlchemy moves what the compat module reaches into.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import cast

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.compat.sqlalchemy import REVIEWED_SQLALCHEMY, begin_transaction, transaction_begun
from shared.db import create_engine

from .conftest import SampleSettings


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(SampleSettings(db_user="postgres"))
    yield engine
    await engine.dispose()


def test_sqlalchemy_is_the_release_the_compat_module_was_reviewed_against() -> None:
    assert sqlalchemy.__version__ == REVIEWED_SQLALCHEMY, (
        "SQLAlchemy changed: review shared/compat/sqlalchemy.py against its asyncpg adapter "
        "(_transaction, _start_transaction), then update REVIEWED_SQLALCHEMY"
    )


def test_the_adapter_still_begins_lazily_through_start_transaction() -> None:
    start = AsyncAdapt_asyncpg_connection._start_transaction
    assert inspect.iscoroutinefunction(start)
    assert list(inspect.signature(start).parameters) == ["self"]
    # It starts asyncpg's transaction and keeps it where commit and rollback look for it.
    source = inspect.getsource(start)
    assert "self._connection.transaction(" in source
    assert "self._transaction = transaction" in source
    assert "if self._transaction is not None:" in inspect.getsource(
        AsyncAdapt_asyncpg_connection.rollback
    )


async def test_begin_joins_sqlalchemys_transaction_and_rolls_back_with_it(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        transaction = await connection.begin()  # SQLAlchemy's, which sends no BEGIN itself
        raw = await connection.get_raw_connection()
        adapter = raw.dbapi_connection
        assert isinstance(cast(object, adapter), AsyncAdapt_asyncpg_connection)
        assert not transaction_begun(adapter)
        driver = raw.driver_connection
        assert driver is not None
        assert not driver.is_in_transaction()
        await begin_transaction(adapter)
        assert transaction_begun(adapter)
        assert driver.is_in_transaction()
        await driver.execute("CREATE TEMP TABLE compat_probe (id int)")
        await transaction.rollback()  # SQLAlchemy's rollback ends what began here
        assert not transaction_begun(adapter)
        assert not driver.is_in_transaction()
        missing = await connection.execute(text("SELECT to_regclass('pg_temp.compat_probe')"))
        assert missing.scalar() is None
