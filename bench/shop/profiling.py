"""py-spy over every platform process while a scenario runs (``--profile DIR``).

Writes one collapsed-stack file per process (``<name>.txt``, for flamegraph tools) and
prints the functions where each process spent most of its own samples.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PY_SPY = shutil.which("py-spy") or str(Path(__file__).resolve().parents[2] / ".venv/bin/py-spy")


@contextmanager
def profiled(pids: dict[str, int], directory: Path | None, seconds: float) -> Iterator[None]:
    """Record ``pids`` for ``seconds`` (no-op without a directory); summarise after."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    recorders = {
        name: subprocess.Popen(  # noqa: S603 (fixed argv)
            [
                PY_SPY,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(directory / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }
    try:
        yield
    finally:
        for recorder in recorders.values():
            recorder.wait(timeout=seconds + 60)
        for name in recorders:
            print(top_functions(directory / f"{name}.txt", name))


def top_functions(path: Path, name: str, count: int = 12) -> str:
    """The functions with the most samples at the top of the stack, and their share."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return f"{name}: no profile"
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():  # py-spy wraps a frame name that holds a newline
            continue
        frames = stack.split(";")
        weight = int(samples)
        total += weight
        own[frames[-1]] += weight
        for frame in set(frames):
            inclusive[frame] += weight
    lines = [f"== {name}: {total} samples; own time =="]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(count)]
    return "\n".join(lines)
