"""The asyncpg internals ``shared.compat.asyncpg`` builds on are still there, unchanged.

The pool's use of it (a connection cut while idle is pinged and replaced) is tested in
``test_db.py``; these fail first, and say why, when an upgrade of asyncpg moves its socket.
"""

from __future__ import annotations

import asyncio
import threading
import time

import asyncpg

from shared.compat.asyncpg import REVIEWED_ASYNCPG, has_unread_input


def test_asyncpg_is_the_release_the_compat_module_was_reviewed_against() -> None:
    assert asyncpg.__version__ == REVIEWED_ASYNCPG, (
        "asyncpg changed: review shared/compat/asyncpg.py (Connection._transport), then "
        "update REVIEWED_ASYNCPG"
    )


async def _connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(user="postgres", host="127.0.0.1", database=database)


def _terminate_from_another_thread(database: str, pid: int) -> None:
    """While this event loop is blocked, so that the server's goodbye waits unread."""

    async def terminate() -> None:
        killer = await _connect(database)
        try:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await killer.close()

    worker = threading.Thread(target=asyncio.run, args=(terminate(),))
    worker.start()
    worker.join()
    time.sleep(0.1)  # the goodbye and the end of the stream reach the socket


async def test_the_connection_keeps_its_transport_with_a_socket(database: str) -> None:
    connection = await _connect(database)
    try:
        transport = connection._transport  # what the compat module reads
        assert isinstance(transport, asyncio.Transport)
        assert transport.get_extra_info("socket") is not None
    finally:
        await connection.close()


async def test_an_idle_connection_has_no_unread_input_until_the_server_writes(
    database: str,
) -> None:
    connection = await _connect(database)
    try:
        assert await connection.fetchval("SELECT 1") == 1
        assert not has_unread_input(connection)
        _terminate_from_another_thread(database, connection.get_server_pid())
        assert not connection.is_closed()  # asyncpg has not read the news yet
        assert has_unread_input(connection)
    finally:
        connection.terminate()
