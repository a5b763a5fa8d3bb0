"""Beginning the transaction of SQLAlchemy's asyncpg adapter before SQLAlchemy would.

The dialect sends BEGIN lazily, with the first statement it executes itself, and offers no
public way to send it alone: a DBAPI connection has no ``begin()``, and running a statement
through SQLAlchemy to get one costs a round trip and its statement machinery.
``shared.db.driver_connection`` runs statements on the asyncpg connection under a session,
so it begins the adapter's transaction here, through the adapter, and SQLAlchemy then
commits or rolls back what ran there as its own.

``libs/shared/tests/test_compat_sqlalchemy.py`` checks the internals this relies on.
"""

from __future__ import annotations

from typing import Any

# The SQLAlchemy release this module was read against; the test fails on any other, so that
# an upgrade is a review of the two names below, not a surprise.
REVIEWED_SQLALCHEMY = "2.1.9"


def transaction_begun(adapter: Any) -> bool:
    """Whether the adapter (``AsyncAdapt_asyncpg_connection``) has sent its BEGIN."""
    return adapter._transaction is not None


async def begin_transaction(adapter: Any) -> None:
    """Send the adapter's BEGIN now (one round trip), as its first statement would."""
    await adapter._start_transaction()
