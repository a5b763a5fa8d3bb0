"""`python -m inventory`: serve the HTTP app; `python -m inventory seed`: load demo data."""

import sys

from inventory.config import get_settings


def _main(arguments: list[str]) -> None:
    if arguments == ["seed"]:
        from inventory.seed import main as seed

        seed(get_settings())
    elif not arguments:
        from inventory.main import create_app
        from shared.server import serve

        serve(create_app, get_settings())
    else:
        sys.exit("usage: python -m inventory [seed]")


_main(sys.argv[1:])
