"""Create the commerce database (unless it exists) and its schemas and roles.

    python infra/postgres/prepare.py [--drop] [database]

The database name defaults to $COMMERCE_DB_NAME, then "commerce"; the server is reached
through $COMMERCE_DB_ADMIN_URL (a superuser; default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from shared.dbadmin import create_database, drop_database, run_script

INIT_SQL = Path(__file__).with_name("init.sql")


async def prepare(name: str) -> None:
    created = await create_database(name)
    await run_script(name, INIT_SQL.read_text())
    print(f"database {name!r} {'created' if created else 'already there'}; schemas and roles ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "database", nargs="?", default=os.environ.get("COMMERCE_DB_NAME", "commerce")
    )
    parser.add_argument("--drop", action="store_true", help="drop the database instead")
    args = parser.parse_args()
    if args.drop:
        asyncio.run(drop_database(args.database))
        print(f"database {args.database!r} dropped")
    else:
        asyncio.run(prepare(args.database))


if __name__ == "__main__":
    main()
