"""Database administration for tooling (``make db``, the test suite): create, prepare, drop.

Run as a superuser through ``COMMERCE_DB_ADMIN_URL``; services never use this.
"""

from __future__ import annotations

import os
import re

import asyncpg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def admin_url() -> str:
    return os.environ.get("COMMERCE_DB_ADMIN_URL", DEFAULT_ADMIN_URL)


def _database_url(base: str, name: str) -> str:
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


def _checked(name: str) -> str:
    if not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"not a safe database name: {name!r}")
    return name


async def create_database(name: str, *, url: str | None = None) -> bool:
    """Create the database unless it exists; say whether it was created."""
    connection = await asyncpg.connect(url or admin_url())
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await connection.execute(f'CREATE DATABASE "{_checked(name)}"')
        return True
    finally:
        await connection.close()


async def drop_database(name: str, *, url: str | None = None) -> None:
    connection = await asyncpg.connect(url or admin_url())
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')
    finally:
        await connection.close()


async def run_script(database: str, sql: str, *, url: str | None = None) -> None:
    """Run a SQL script (several statements) inside ``database`` as the admin user."""
    connection = await asyncpg.connect(_database_url(url or admin_url(), _checked(database)))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
