"""`python -m gateway [serve]` and
`python -m gateway create-admin --email ... --password ... [--promote]`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from gateway.config import GatewaySettings, get_settings
from gateway.identity import service
from gateway.identity.exceptions import PromotionRequired
from gateway.identity.passwords import PasswordHasher
from gateway.identity.schemas import Email, Password
from shared.db import create_engine, create_sessionmaker


async def create_admin(
    settings: GatewaySettings, *, email: str, password: str, promote: bool = False
) -> str:
    """What was done, as a line for the operator; ``PromotionRequired`` when ``email`` is an
    existing non-admin account and ``promote`` is not given (nothing is changed then)."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            user, outcome, revoked = await service.create_admin(
                session=session,
                hasher=PasswordHasher(),
                email=email,
                password=password,
                promote=promote,
            )
    finally:
        await engine.dispose()
    sessions = f", {revoked} session(s) revoked" if revoked else ""
    return f"admin {user.email} {outcome.value}{sessions}: id {user.id}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP app (the default)")
    admin = commands.add_parser(
        "create-admin",
        help="create an admin (again: unchanged with the same password, else a password reset)",
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="asked for on the terminal when left out")
    admin.add_argument(
        "--promote",
        action="store_true",
        help="make an existing non-admin account an admin: its password is reset to this one"
        " and every session of it is revoked (without it, such an account is refused)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "create-admin":
        password = arguments.password or getpass.getpass("password: ")
        try:
            email = TypeAdapter(Email).validate_python(arguments.email)
            password = TypeAdapter(Password).validate_python(password)
        except ValidationError as exc:
            print(f"refused: {exc.errors()[0]['msg']}", file=sys.stderr)
            return 2
        if refusal := get_settings().refuses_admin(email, password):
            print(f"refused: {refusal}", file=sys.stderr)
            return 2
        try:
            done = asyncio.run(
                create_admin(
                    get_settings(), email=email, password=password, promote=arguments.promote
                )
            )
        except PromotionRequired as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        print(done)
        return 0

    from gateway.server import serve  # only the server needs the app

    serve(get_settings())
    return 0
