"""``python -m infra.replicas.generate <dir>``: write ``make replicas``'s HAProxy config and
Procfile into ``<dir>`` (git-ignored ``var/replicas``), from ``infra.replicas.topology``."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.replicas.topology import Layout, haproxy_config


def write(folder: Path, layout: Layout, python: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "haproxy.cfg").write_text(haproxy_config(layout))
    lines = [f"lb: haproxy -db -f {folder / 'haproxy.cfg'}"]
    lines += [f"{process.name}: {process.command(python)}" for process in layout.processes()]
    (folder / "Procfile").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m infra.replicas.generate <folder>", file=sys.stderr)
        return 2
    write(Path(argv[0]), Layout(), sys.executable)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
