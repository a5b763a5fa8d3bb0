"""Run a service's Alembic migrations from a test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.settings import BaseServiceSettings


def _alembic(
    alembic_ini: Path, action: str, revision: str, settings: BaseServiceSettings | None
) -> None:
    config = Config(str(alembic_ini))
    if settings is not None:
        config.attributes["settings"] = settings
    getattr(command, action)(config, revision)


def migrate(
    alembic_ini: Path,
    *,
    revision: str = "head",
    downgrade: bool = False,
    settings: BaseServiceSettings | None = None,
) -> None:
    """Upgrade (or downgrade) one service's schema.

    Runs in a thread of its own: a migration environment starts its own event loop, which
    must not meet the loop pytest-asyncio keeps for the session.
    """
    action = "downgrade" if downgrade else "upgrade"
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_alembic, alembic_ini, action, revision, settings).result()
