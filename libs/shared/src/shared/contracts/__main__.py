"""``python -m shared.contracts export [--force]``: regenerate the contract snapshots."""

from __future__ import annotations

import argparse

import shared.contracts  # noqa: F401  (registers every contract)
from shared.contracts.schemas import SNAPSHOT_DIR, export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.contracts")
    commands = parser.add_subparsers(dest="command", required=True)
    export_parser = commands.add_parser("export", help="write JSON Schema snapshots")
    export_parser.add_argument(
        "--force", action="store_true", help="overwrite even an incompatible change"
    )
    args = parser.parse_args(argv)
    try:
        changed = export(SNAPSHOT_DIR, force=args.force)
    except ValueError as exc:
        print(f"refused: {exc}\nbump the contract's version instead (or --force on purpose)")
        return 1
    for name in changed:
        print(f"wrote {SNAPSHOT_DIR / name}")
    if not changed:
        print("snapshots up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
