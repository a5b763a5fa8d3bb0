"""Which products a transaction changed, and the catalog cache told once it commits.

Every write that changes what a product read shows marks its skus on the session
(``mark_stale``): product creation and edits, media changes, and ``write_stock``
(``inventory.stock.repository.writes``), which every change of a stock level goes through.
When the transaction commits, the skus are handed to the invalidator attached to the
session's engine (the process's catalog cache), before ``commit()`` returns to its caller:
an answer sent after a write, or the ack of a consumed event, never precedes the
invalidation. A rollback forgets them. Nothing here does I/O, so repositories may call it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_

logger = logging.getLogger(__name__)

Invalidator = Callable[[frozenset[str]], Awaitable[None]]
"""Tells the cache these skus changed (and so did the list pages); never raises."""

_STALE = "inventory.catalog.stale"
_invalidators: WeakKeyDictionary[Engine, Invalidator] = WeakKeyDictionary()


def mark_stale(session: AsyncSession | Session, skus: Iterable[str]) -> None:
    """Note that this transaction changes what the products ``skus`` look like."""
    stale: set[str] = session.info.setdefault(_STALE, set())
    stale.update(skus)


def attach(engine: AsyncEngine, invalidator: Invalidator) -> None:
    """Commits of sessions on ``engine`` invalidate through ``invalidator`` from now on."""
    _invalidators[engine.sync_engine] = invalidator


def detach(engine: AsyncEngine) -> None:
    _invalidators.pop(engine.sync_engine, None)


def _engine_of(session: Session) -> Engine | None:
    bind = session.bind
    if isinstance(bind, Connection):
        return bind.engine
    return bind if isinstance(bind, Engine) else None


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    stale: set[str] | None = session.info.pop(_STALE, None)
    if not stale:
        return
    engine = _engine_of(session)
    invalidator = _invalidators.get(engine) if engine is not None else None
    if invalidator is None:
        return  # no cache in this process (a tool, the seed): the TTL is the only bound
    try:
        # The commit runs inside SQLAlchemy's greenlet, so the cache's coroutine can be
        # awaited here: the caller's ``commit()`` returns once the cache has been told.
        await_(invalidator(frozenset(stale)))
    except Exception:  # the write is committed whatever happens to its invalidation
        logger.warning("catalog cache invalidation failed", exc_info=True)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # Only the whole transaction's rollback: a savepoint's leaves the marks made outside it
    # (an extra invalidation is harmless, a missing one is not).
    if previous_transaction.parent is None:
        session.info.pop(_STALE, None)
