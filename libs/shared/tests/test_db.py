"""The driver connection joins the session's transaction; raw driver errors are classified."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import db as db_module
from shared.db import (
    autocommit_connection,
    create_engine,
    create_sessionmaker,
    database_unavailable,
    driver_connection,
)

from .conftest import SampleSettings


@pytest.fixture
async def sessionmaker(database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(SampleSettings(db_user="postgres"))
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE IF EXISTS public.driver_probe"))
        await connection.execute(
            text("CREATE TABLE public.driver_probe (id int PRIMARY KEY, doc jsonb)")
        )
    yield create_sessionmaker(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE public.driver_probe"))
    await engine.dispose()


async def _ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT id FROM public.driver_probe ORDER BY id"))
        return list(rows.scalars())


async def _insert_then_fail(sessionmaker: async_sessionmaker[AsyncSession], row_id: int) -> None:
    async with sessionmaker() as session, session.begin():
        db = await driver_connection(session)
        await db.execute("INSERT INTO public.driver_probe (id) VALUES ($1)", row_id)
        raise RuntimeError("the handler failed")


async def _insert_twice(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        db = await driver_connection(session)
        await db.execute("INSERT INTO public.driver_probe (id) VALUES (7), (7)")


async def test_driver_statements_commit_and_roll_back_with_the_session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    engine = sessionmaker.kw["bind"]
    async with sessionmaker() as session, session.begin():
        db = await driver_connection(session)
        await db.execute("INSERT INTO public.driver_probe (id, doc) VALUES ($1, $2)", 1, '{"a": 1}')
        # The ORM side of the same transaction sees the row: one transaction, not two.
        assert await session.scalar(text("SELECT count(*) FROM public.driver_probe")) == 1
    # The first statement of the transaction went through the driver: it is rolled back too.
    with pytest.raises(RuntimeError):
        await _insert_then_fail(sessionmaker, 2)
    assert await _ids(engine) == [1]
    async with sessionmaker() as session:
        db = await driver_connection(session)
        # jsonb comes back decoded by the dialect's codec, as through the ORM.
        assert await db.fetchval("SELECT doc FROM public.driver_probe WHERE id = 1") == {"a": 1}


async def test_driver_errors_keep_their_sqlstate_and_lost_connections_count_as_unavailable(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(asyncpg.UniqueViolationError) as duplicate:
        await _insert_twice(sessionmaker)
    assert duplicate.value.sqlstate == "23505"
    assert not database_unavailable(duplicate.value)
    assert await _ids(sessionmaker.kw["bind"]) == []

    async with sessionmaker() as session:
        db = await driver_connection(session)
        await db.close()
        with pytest.raises(asyncpg.InterfaceError) as closed:
            await db.fetchval("SELECT 1")
        assert database_unavailable(closed.value)
        await session.invalidate()
    # Not the database's: an error of anything else a handler calls is that event's failure.
    assert not database_unavailable(ConnectionResetError("reset by peer"))


async def _backend_pid(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        db = await driver_connection(session)
        return int(await db.fetchval("SELECT pg_backend_pid()"))


@pytest.fixture
async def one_connection(database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(SampleSettings(db_user="postgres", db_pool_size=1, db_max_overflow=0))
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    one_connection: async_sessionmaker[AsyncSession],
) -> None:
    first = await _backend_pid(one_connection)
    killer = await asyncpg.connect(user="postgres", host="127.0.0.1", database="postgres")
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await killer.close()
    await asyncio.sleep(0.1)  # the server's goodbye reaches the idle connection
    # Checked out again at once, so without a ping: the closed socket alone gives it away.
    assert await _backend_pid(one_connection) not in (first, 0)


async def test_only_a_connection_idle_past_the_threshold_is_pinged(
    one_connection: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.2)
    pings: list[str] = []
    async with one_connection() as session:
        db = await driver_connection(session)
        db.add_query_logger(
            lambda record: pings.append(record.query) if record.query == ";" else None
        )
    await _backend_pid(one_connection)  # back from the pool at once: no ping
    assert pings == []
    await asyncio.sleep(0.3)
    await _backend_pid(one_connection)  # idle past the threshold: pinged first
    assert pings == [";"]


def _terminate_without_yielding(pid: int) -> None:
    """Terminate backend ``pid`` from another thread while this event loop is blocked, so
    that the server's goodbye waits unread on the connection's socket."""

    async def terminate() -> None:
        killer = await asyncpg.connect(user="postgres", host="127.0.0.1", database="postgres")
        try:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await killer.close()

    worker = threading.Thread(target=asyncio.run, args=(terminate(),))
    worker.start()
    worker.join()
    time.sleep(0.1)  # the goodbye and the end of the stream reach the socket


async def test_a_connection_cut_before_asyncpg_read_the_news_is_pinged_and_replaced(
    one_connection: async_sessionmaker[AsyncSession],
) -> None:
    first = await _backend_pid(one_connection)
    # asyncpg still thinks the connection open: only the bytes waiting on its socket tell.
    # Checked out again at once, so it is not pinged for being idle.
    _terminate_without_yielding(first)
    assert await _backend_pid(one_connection) not in (first, 0)


async def _autocommit_backend_pid(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with autocommit_connection(sessionmaker) as db:
        return int(await db.fetchval("SELECT pg_backend_pid()"))


async def test_an_autocommit_connection_that_failed_for_the_database_is_not_pooled_again(
    one_connection: async_sessionmaker[AsyncSession],
) -> None:
    # Found by the fault tests under load: a connection the server cut while it sat idle can
    # be handed out before asyncpg noticed the closed socket; its statement raises
    # InternalClientError, and pooled again it failed the next request too.
    first = await _autocommit_backend_pid(one_connection)
    broken = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert database_unavailable(broken)

    async def fail_on_the_pooled_connection() -> None:
        async with autocommit_connection(one_connection) as db:
            assert await db.fetchval("SELECT pg_backend_pid()") == first
            raise broken

    with pytest.raises(asyncpg.exceptions.InternalClientError):
        await fail_on_the_pooled_connection()
    assert await _autocommit_backend_pid(one_connection) not in (first, 0)


async def test_an_autocommit_connection_survives_the_statements_own_errors(
    one_connection: async_sessionmaker[AsyncSession],
) -> None:
    first = await _autocommit_backend_pid(one_connection)
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with autocommit_connection(one_connection) as db:
            await db.fetchval("SELECT 1 / 0")
    assert await _autocommit_backend_pid(one_connection) == first


async def test_a_roles_connections_carry_its_name_beside_the_services(database: str) -> None:
    settings = SampleSettings(db_user="postgres")
    for role, expected in (
        ("", settings.service_name),
        ("worker", f"{settings.service_name}-worker"),
    ):
        engine = create_engine(settings, role=role)
        try:
            async with autocommit_connection(engine) as db:
                assert await db.fetchval("SELECT current_setting('application_name')") == expected
        finally:
            await engine.dispose()
