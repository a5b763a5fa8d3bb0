"""One pooled async engine per process, its session factory, and naming conventions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData, Table, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from shared.compat.asyncpg import has_unread_input
from shared.compat.sqlalchemy import begin_transaction, transaction_begun
from shared.settings import BaseServiceSettings

# Explicit constraint names, so migrations can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """Metadata whose tables all live in the service's own schema."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def qualified_name(table: Table) -> str:
    """``"schema"."name"`` quoted, for fixed SQL texts: names come from our own models."""
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def create_engine(settings: BaseServiceSettings, *, role: str = "") -> AsyncEngine:
    """The process's engine: pool sizes from settings, search path pinned to its schema.

    Its connections are named ``<service>`` in ``pg_stat_activity``, or ``<service>-<role>``
    (``orders-worker``), so that an app's backends and its worker's can be told apart.
    """
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # replaced by _check_on_checkout
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {
                "application_name": f"{settings.service_name}-{role}"
                if role
                else settings.service_name,
                "search_path": settings.db_schema,
            },
        },
    )
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    event.listen(engine.sync_engine, "checkout", _check_on_checkout)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled connection idle longer than this answers a ping before it is handed out."""


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["checked_in_at"] = time.monotonic()


def _check_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling, at the price of a round trip only where it helps.

    A connection the server closed (a restart, ``pg_terminate_backend``, an idle timeout)
    says so: the server writes its reason and closes the socket. Between uses an idle pooled
    connection receives nothing, so a closed connection, or one with input waiting that
    asyncpg has not read yet, is pinged (``SELECT ;``, one round trip) before it is handed
    out, and discarded if the ping fails. Both checks are free of round trips (asyncpg's own
    state, and a zero-timeout look at its socket: ``shared.compat.asyncpg``). A connection
    idle for over ``PING_AFTER_IDLE_SECONDS`` is pinged too: it may have been cut without a
    word (a network drop, a proxy's timeout). Pinging every checkout would cost a round trip per
    transaction, and an order is some fifteen transactions. (SQLAlchemy's own
    ``pool_pre_ping`` is three round trips on asyncpg: BEGIN, ping, ROLLBACK.) A failed check
    raises ``DisconnectionError``, on which the pool discards the connection and checks out
    another (a fresh one after a database restart).
    """
    driver = dbapi_connection.driver_connection
    if driver.is_closed():
        raise DisconnectionError("pooled connection was closed by the server")
    idle = time.monotonic() - record.info.get("checked_in_at", 0.0)
    if idle < PING_AFTER_IDLE_SECONDS and not has_unread_input(driver):
        return
    try:
        await_(driver.fetchrow(";"))
    except Exception as exc:
        raise DisconnectionError("pooled connection failed its ping") from exc


async def driver_connection(session: AsyncSession | AsyncConnection) -> Any:
    """The asyncpg connection under the transaction of ``session`` (a session or a Core
    connection), for statements on hot paths.

    A fixed SQL text run here costs a fraction of the CPU of the same text through
    ``session.execute(text(...))``, and an ORM query or flush several times more again
    (bench/CHANGES.md): on a hot path SQLAlchemy's statement machinery, not Postgres, would
    be most of the CPU. The statement joins the session's transaction (begun, committed and
    rolled back by the session as usual) and asyncpg prepares it once per connection.

    What changes for the caller: parameters are positional (``$1``), json/jsonb parameters
    are JSON text (the dialect's codec), errors are asyncpg's own (``sqlstate`` on the
    exception; ``database_unavailable`` knows them), and the ORM neither flushes before nor
    sees what these statements write: a unit of work uses one path or the other.
    """
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    raw = await connection.get_raw_connection()
    adapter = raw.dbapi_connection
    # The dialect sends BEGIN lazily, with the first statement it executes itself: begin
    # now, through the adapter, so that it also commits or rolls back what runs here.
    if adapter is not None and not transaction_begun(adapter):
        try:
            await begin_transaction(adapter)
        except Exception as exc:
            # BEGIN fails only on a broken connection: discard it, and raise what the apps
            # answer with a 503 and the consumers retry in place (SQLAlchemy would have
            # wrapped it so, had it sent the BEGIN itself).
            await connection.invalidate(exc)
            raise DBAPIError("BEGIN", None, exc, connection_invalidated=True) from exc
    return raw.driver_connection


@asynccontextmanager
async def autocommit_connection(
    bind: AsyncEngine | async_sessionmaker[AsyncSession],
) -> AsyncIterator[Any]:
    """A pooled asyncpg connection outside any transaction: each statement commits alone.

    For a write that is one statement, atomic by itself, which must commit before what
    follows (a payment's attempt record before the provider is called): BEGIN and COMMIT
    would be two more round trips around it. Nothing here runs through SQLAlchemy (which
    would begin a transaction with its first statement), so the pool has nothing to roll back
    when the connection returns. A Core connection, not a session: less CPU per use.
    """
    engine = bind if isinstance(bind, AsyncEngine) else bind.kw["bind"]
    if not isinstance(engine, AsyncEngine):
        raise TypeError("autocommit_connection needs an engine or a sessionmaker bound to one")
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        try:
            yield raw.driver_connection
        except BaseException as exc:
            if database_unavailable(exc):
                # SQLAlchemy never saw the statement fail, so it would pool the connection
                # again: one the server cut, or whose protocol is mid-operation, would fail
                # whoever took it next.
                await connection.invalidate(exc)
            raise


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay usable after commit: services return them to routers after the
    # transaction has ended.
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


# SQLSTATE classes meaning "the database is unavailable", not "this message is wrong":
# connection exceptions, insufficient resources (too many connections), operator intervention
# (admin or crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached rather than refused the work."""
    if isinstance(exc, PoolTimeoutError):
        return True
    cause: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, OSError):
            return True
        cause = exc.orig
    # Statements on the driver connection raise asyncpg's errors as they are: a connection
    # lost mid-statement carries SQLSTATE 08003 (below), one used after it closed is an
    # InterfaceError without a SQLSTATE. One the server cut while it sat idle in the pool can
    # be handed out in the instant between asyncpg reading the server's goodbye (which leaves
    # its protocol waiting for a sync that never comes) and noticing the closed socket: the
    # next statement raises InternalClientError ("cannot switch to state 12; another
    # operation (2) is in progress"). (A bare OSError is not counted: it may come from
    # anything a handler calls, and is then that event's failure.)
    if isinstance(cause, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return True
    sqlstate = getattr(cause, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
