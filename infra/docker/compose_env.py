"""Write a Compose ``.env`` from ``.env.example``, every empty password a random one.

``make up`` runs it when there is no ``.env``: a development stack then starts with
passwords nobody chose, instead of shared placeholders. An existing file is never touched.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def filled(example: str) -> str:
    """``example`` with a random URL-safe value after every empty ``*_PASSWORD=``."""
    lines = []
    for line in example.splitlines():
        name, equals, value = line.partition("=")
        if equals and name.endswith("_PASSWORD") and not value and not name.startswith("#"):
            line = f"{name}={secrets.token_urlsafe(24)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(example: Path, target: Path) -> None:
    if target.exists():
        return
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as env_file:
        env_file.write(filled(example.read_text()))
    print(f"wrote {target} with random passwords (from {example})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
