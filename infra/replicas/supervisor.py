"""``python -m infra.replicas.supervisor <Procfile>``: run every process of a Procfile, their
output interleaved as honcho prints it, and restart any that exits.

honcho stops everything when one process exits, which is right for ``make dev`` and wrong for
replicas: a replica that dies must come back while its twin serves. Here each command runs
under ``/bin/sh -c 'exec ...'`` (so the signal reaches the process itself); when it exits
while the supervisor is not stopping, it is started again after a pause that doubles from
0.5 s to 30 s while it keeps dying, and starts over once it has run a minute. SIGTERM or
SIGINT stops restarting, sends SIGTERM to every process, waits for them to drain
(``STOP_SECONDS``), then SIGKILLs what is left; the exit code is 0. Successful readiness
checks (HAProxy's, every second) are not printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Longer than an app's graceful shutdown (20 s) and a worker's drain: its consumers, then its
# relay, each bounded by COMMERCE_WORKER_SHUTDOWN_TIMEOUT_SECONDS (20 s), so up to 40 s.
STOP_SECONDS = 45.0
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 30.0
HEALTHY_SECONDS = 60.0  # a process that ran this long restarts after the first pause again
# HAProxy checks every replica's readiness each second; the apps log each check like any
# request. Those lines (a successful check) are left out of the interleaved output.
PROBE_LINE = "GET /health/ready 200"
COLOURS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)


def read_procfile(text: str) -> dict[str, str]:
    """``name: command`` lines; blank lines and ``#`` comments are skipped."""
    commands: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, command = line.partition(":")
        if not separator or not name.strip() or not command.strip():
            raise ValueError(f"not a Procfile line: {line!r}")
        commands[name.strip()] = command.strip()
    return commands


def next_pause(previous: float, ran_seconds: float) -> float:
    """The pause before a restart: doubled while the process keeps dying young."""
    if ran_seconds >= HEALTHY_SECONDS or previous <= 0:
        return FIRST_PAUSE_SECONDS
    return min(previous * 2, MAX_PAUSE_SECONDS)


@dataclass
class Supervised:
    name: str
    command: str
    prefix: str
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    pause: float = 0.0
    started_at: float = field(default=0.0)
    pipe: asyncio.Task[None] | None = None  # copies its output, prefixed


class Supervisor:
    def __init__(self, commands: dict[str, str], *, colour: bool = True) -> None:
        width = max(len(name) for name in commands)
        self.supervised = [
            Supervised(name, command, self._prefix(name, width, i, colour))
            for i, (name, command) in enumerate(commands.items())
        ]
        self.stopping = asyncio.Event()
        self._own_prefix = self._prefix("supervisor", width, -1, colour)

    @staticmethod
    def _prefix(name: str, width: int, index: int, colour: bool) -> str:
        label = f"{name:<{width}} | "
        if not colour:
            return label
        code = 1 if index < 0 else COLOURS[index % len(COLOURS)]
        return f"\x1b[{code}m{label}\x1b[0m"

    def say(self, message: str) -> None:
        sys.stdout.write(f"{self._own_prefix}{message}\n")
        sys.stdout.flush()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        keepers = [asyncio.create_task(self._keep(item)) for item in self.supervised]
        await self.stopping.wait()
        self.say(f"stopping: SIGTERM to every process, {STOP_SECONDS:.0f} s to drain")
        await self._stop_all()
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        return 0

    async def _keep(self, item: Supervised) -> None:
        """Run ``item`` until the supervisor stops, starting it again each time it exits."""
        while not self.stopping.is_set():
            await self._start(item)
            assert item.process is not None
            code = await item.process.wait()
            if item.pipe is not None:
                await item.pipe  # its last lines before the news of its exit
            if self.stopping.is_set():
                return
            ran = time.monotonic() - item.started_at
            item.pause = next_pause(item.pause, ran)
            self.say(f"{item.name} exited with {code} after {ran:.1f} s: restart in {item.pause} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), item.pause)

    async def _start(self, item: Supervised) -> None:
        item.process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            f"exec {item.command}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it forwards SIGTERM
        )
        item.starts += 1
        item.started_at = time.monotonic()
        self.say(f"{item.name} started (pid {item.process.pid}, start {item.starts})")
        item.pipe = asyncio.create_task(self._pipe(item, item.process))

    async def _pipe(self, item: Supervised, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if PROBE_LINE in line:
                continue
            sys.stdout.write(f"{item.prefix}{line}\n")
            sys.stdout.flush()

    async def _stop_all(self) -> None:
        running = [i for i in self.supervised if i.process and i.process.returncode is None]
        for item in running:
            assert item.process is not None
            with contextlib.suppress(ProcessLookupError):
                item.process.send_signal(signal.SIGTERM)
        waits = [item.process.wait() for item in running if item.process]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), STOP_SECONDS)
        except TimeoutError:
            for item in running:
                if item.process and item.process.returncode is None:
                    self.say(f"{item.name} did not stop in {STOP_SECONDS:.0f} s: SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        item.process.kill()
            await asyncio.gather(*(i.process.wait() for i in running if i.process))
        self.say("every process stopped")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m infra.replicas.supervisor <Procfile>", file=sys.stderr)
        return 2
    commands = read_procfile(Path(argv[0]).read_text())
    return asyncio.run(Supervisor(commands, colour=sys.stdout.isatty()).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
