"""A generated file kept in the repository: rewritten, or checked to be current (CI)."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, rendered: str, *, check: bool, command: str, root: Path) -> int:
    """With ``check``: exit status 1 (and why) if ``path`` differs from ``rendered``; else
    write ``rendered`` to ``path`` if it differs. The process's exit status."""
    current = path.read_text() if path.exists() else ""
    name = path.relative_to(root)
    if check:
        if rendered != current:
            print(f"{name} is stale: run {command}", file=sys.stderr)
            return 1
        return 0
    if rendered != current:
        path.write_text(rendered)
        print(f"{name} rewritten")
    return 0
