"""Messaging benchmark: outbox → relay → broker → consumer → inbox, on 127.0.0.1.

Prints figures, never pass/fail:
1. throughput: N events committed up front, then one relay process and one consumer
   process (each a ``run_worker``) drain them; events/s from relay start to last handled;
2. latency: events committed one per transaction at a fixed offered rate; commit-to-handled
   p50/p99 (handled = the consumer's transaction with the effect and inbox row committed).

Uses a scratch database and broker namespace of its own, removed at the end.
``python bench/messaging.py [--events 20000] [--rate 1000] [--seconds 10]``
``... --baseline DIR [--rounds 3]`` runs this whole script once per build and round, taking
turns: DIR's own (its ``.venv``, cwd DIR: its schema, producers, role processes and library)
and this checkout's; it reads back what each printed, then medians and this ÷ baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from sqlalchemy import Double, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.inventory import StockLow
from shared.db import create_engine, create_sessionmaker, driver_connection, service_metadata
from shared.dbadmin import create_database, drop_database
from shared.messaging import (
    BatchHandler,
    Broker,
    Consumer,
    Envelope,
    InboxMixin,
    Outbox,
    OutboxMixin,
    declare_queue,
    delete_topology,
    run_worker,
)
from shared.settings import BaseServiceSettings

SCHEMA = "messaging_bench"
PURPOSE = "bench.consumer"
PRODUCERS = 8  # concurrent producer transactions in the latency run


class BenchSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_")
    service_name: ClassVar[str] = SCHEMA


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(InboxMixin, Base):
    pass


class Handled(Base):
    __tablename__ = "handled"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consumer: Mapped[str] = mapped_column(String(100))
    handled_at: Mapped[float] = mapped_column(Double)  # wall clock, same host as the producer


def settings(database: str, namespace: str) -> BenchSettings:
    return BenchSettings(
        environment="development",  # the local servers' development credentials
        db_name=database,
        db_user="postgres",
        broker_namespace=namespace,
        log_level="WARNING",
    )


# The handler's effect as the services write theirs: fixed SQL on the driver connection,
# in the consumer's transaction (an ORM add and flush cost about twice the CPU). A batch
# handler, as the orders service's price replica is: one statement for the events of a
# batch instead of one per event (a quarter of the consumer's CPU in its profile).
RECORD_MANY = (
    f"INSERT INTO {SCHEMA}.handled (event_id, consumer, handled_at)"  # noqa: S608
    " SELECT e, $2, $3 FROM unnest($1::uuid[]) AS e"
)


async def record(session: AsyncSession, events: Sequence[Envelope]) -> None:
    db = await driver_connection(session)
    await db.execute(RECORD_MANY, [event.id for event in events], PURPOSE, time.time())


def consumer() -> Consumer:
    handlers = {StockLow.event_type: BatchHandler(record)}
    return Consumer(name=PURPOSE, handlers=handlers, inbox=ProcessedEvent)


async def role_main(role: str, database: str, namespace: str) -> None:
    """One worker process: the relay alone, or the consumer alone; SIGTERM stops it."""
    config = settings(database, namespace)
    if role == "relay":
        await run_worker(config, outbox=Outbox(OutboxEvent))
    else:
        await run_worker(config, consumers=[consumer()])


def spawn(role: str, database: str, namespace: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 (our own script)
        [sys.executable, __file__, "--role", role, "--database", database, "--namespace", namespace]
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: graceful stop
        process.wait(timeout=30)


def cpu_of(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds used so far by each of ``pids`` still alive (/proc)."""
    used = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def cpu_since(before: dict[int, float]) -> float:
    """CPU seconds used since ``before`` by those of its processes alive at both readings."""
    now = cpu_of(list(before))
    return sum(now[pid] - before[pid] for pid in now)


def pids_named(command: str) -> list[int]:
    """Processes of this host whose command name is ``command`` (the broker, the database)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() == command:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(events: int, rate: int, seconds: float) -> None:
    database = f"commerce_bench_{uuid.uuid4().hex[:8]}"
    namespace = f"bench-{os.getpid()}"
    config = settings(database, namespace)
    await create_database(database)
    engine = create_engine(config)
    broker = Broker(config)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
            await connection.run_sync(Base.metadata.create_all)
        await broker.connect()
        channel = await broker.channel()
        await declare_queue(
            channel, settings=config, purpose=PURPOSE, event_types=[StockLow.event_type]
        )
        sessionmaker = create_sessionmaker(engine)
        outbox = Outbox(OutboxEvent)

        async def handled_count() -> int:
            async with engine.connect() as connection:
                return int(
                    (
                        await connection.execute(select(func.count()).select_from(Handled))
                    ).scalar_one()
                )

        async def wait_handled(count: int, limit: float) -> None:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                if await handled_count() >= count:
                    return
                await asyncio.sleep(0.02)

        # 1. throughput: a backlog committed at once, drained by one relay and one consumer
        # that are already up and idle (their start-up is outside the timing and the CPU).
        consumer_process = spawn("consumer", database, namespace)
        relay_process = spawn("relay", database, namespace)
        processes.extend([relay_process, consumer_process])
        await asyncio.sleep(3)
        watched = {"relay": [relay_process.pid], "consumer": [consumer_process.pid]}
        watched |= {"broker": pids_named("beam.smp"), "postgres": pids_named("postgres")}
        cpu_before = {role: cpu_of(pids) for role, pids in watched.items()}
        backlog = [
            Envelope.new(StockLow(sku="B", available=n, reorder_point=1)) for n in range(events)
        ]
        async with sessionmaker() as session, session.begin():
            await outbox.add_many(session, backlog)
        started = time.time()  # the commit: the relay is notified now
        await wait_handled(events, 120)
        cpu_used = {role: cpu_since(before) for role, before in cpu_before.items()}
        async with engine.connect() as connection:
            last = (await connection.execute(select(func.max(Handled.handled_at)))).scalar_one()
        drained = await handled_count()
        throughput = drained / (last - started) if last else 0.0
        cpu_per_event = {role: used / max(drained, 1) * 1e6 for role, used in cpu_used.items()}

        # 2. latency at a fixed offered rate, one event per transaction.
        # Several producers share the schedule, as a service's requests would: one alone
        # cannot commit 1,000 transactions a second on this machine. Each runs the outbox's
        # own statement on a driver connection of its own, as a transaction of one
        # statement: one round trip per event instead of a pool checkout, BEGIN, the insert
        # and COMMIT through SQLAlchemy (524 us of the producers' CPU per commit, a quarter
        # of the two cores at 1,000/s, taken from the relay and the consumer measured).
        commits: dict[uuid.UUID, float] = {}
        total = int(rate * seconds)
        origin = time.monotonic()

        async def produce(first: int) -> None:
            async with engine.connect() as connection:
                db = (await connection.get_raw_connection()).driver_connection
                assert db is not None
                for n in range(first, total, PRODUCERS):
                    delay = origin + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    event = Envelope.new(StockLow(sku="L", available=n, reorder_point=1))
                    await db.execute(outbox.statement, *outbox.parameters([event]))
                    commits[event.id] = time.time()

        producer_cpu = time.process_time()
        await asyncio.gather(*(produce(first) for first in range(PRODUCERS)))
        producer_us = (time.process_time() - producer_cpu) / max(total, 1) * 1e6
        achieved = total / (time.monotonic() - origin)
        await wait_handled(drained + total, 60)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(Handled.event_id, Handled.handled_at).where(
                        Handled.event_id.in_(list(commits))
                    )
                )
            ).all()
        latencies = [(handled_at - commits[event_id]) * 1000 for event_id, handled_at in rows]

        print(
            "messaging benchmark (1 relay process, 1 consumer process, "
            f"prefetch {config.broker_prefetch}, relay batch {config.outbox_batch_size}, "
            "quorum queue, persistent + confirms)"
        )
        print(
            f"  throughput: {drained}/{events} events drained in {last - started:.2f} s"
            f" = {throughput:,.0f} events/s"
        )
        print(
            "  CPU per event while draining: "
            + ", ".join(f"{role} {us:,.0f} us" for role, us in cpu_per_event.items())
            + f" (total {sum(cpu_per_event.values()):,.0f} us)"
        )
        print(
            f"  latency at {rate}/s offered ({achieved:,.0f}/s achieved, "
            f"{len(latencies)}/{total} handled): "
            f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
            f"mean {statistics.fmean(latencies):.1f} ms, max {max(latencies):.1f} ms; "
            f"the producer spent {producer_us:,.0f} us of CPU per commit"
        )
    finally:
        for process in processes:
            stop(process)
        if broker.is_connected():
            channel = await broker.channel()
            await delete_topology(channel, settings=config, purposes=[PURPOSE])
        await broker.close()
        await engine.dispose()
        await drop_database(database)


# What the baseline mode reads back from a build's run of this script (the lines ``run``
# prints; a baseline of an older commit prints them the same way).
ROOT = Path(__file__).resolve().parents[1]
METRICS = (
    "events/s",
    "relay us",
    "consumer us",
    "broker us",
    "postgres us",
    "total us",
    "p50 ms",
    "p99 ms",
)
THROUGHPUT_LINE = re.compile(r"^  throughput: .* = ([\d,.]+) events/s$", re.M)
CPU_LINE = re.compile(r"^  CPU per event while draining: (.*) \(total ([\d,.]+) us\)$", re.M)
CPU_OF_PROCESS = re.compile(r"(\w+) ([\d,.]+) us")
LATENCY_LINE = re.compile(r"^  latency at .*: p50 ([\d.]+) ms, p99 ([\d.]+) ms", re.M)
LABEL_WIDTH = 18


@dataclass(frozen=True)
class Build:
    label: str
    python: Path
    checkout: Path


def build_command(build: Build, events: int, rate: int, seconds: float) -> list[str]:
    """The build's own interpreter running the build's own copy of this script."""
    script = build.checkout / "bench" / "messaging.py"
    options = ["--events", str(events), "--rate", str(rate), "--seconds", str(seconds)]
    return [str(build.python), str(script), *options]


def round_order(round_number: int) -> tuple[str, str]:
    """Baseline first in odd rounds, this checkout first in even ones."""
    return ("baseline", "this") if round_number % 2 else ("this", "baseline")


def parse_figures(label: str, output: str) -> dict[str, float]:
    throughput, cpu = THROUGHPUT_LINE.search(output), CPU_LINE.search(output)
    latency = LATENCY_LINE.search(output)
    if throughput is None or cpu is None or latency is None:
        raise RuntimeError(f"{label}: no figures in its output:\n{output[-3000:]}")

    def number(printed: str) -> float:
        return float(printed.replace(",", ""))

    figures = {"events/s": number(throughput[1])}
    figures |= {f"{name} us": number(us) for name, us in CPU_OF_PROCESS.findall(cpu[1])}
    figures["total us"] = number(cpu[2])
    figures["p50 ms"], figures["p99 ms"] = float(latency[1]), float(latency[2])
    return figures


def medians(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {
        name: statistics.median(values)
        for name in METRICS
        if (values := [run[name] for run in runs if name in run])
    }


def ratios(this: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
    return {
        name: this[name] / baseline[name] for name in METRICS if name in this and baseline.get(name)
    }


def format_header() -> str:
    return f"{'':<{LABEL_WIDTH}}" + "".join(f"{name:>{len(name) + 3}}" for name in METRICS)


def format_row(label: str, figures: Mapping[str, float], *, ratio: bool = False) -> str:
    cells = []
    for name in METRICS:
        value = figures.get(name)
        if value is None:
            text = "-"
        elif ratio:
            text = f"{value:.2f}"
        elif name.endswith(" ms"):
            text = f"{value:.1f}"
        else:
            text = f"{value:,.0f}"
        cells.append(f"{text:>{len(name) + 3}}")
    return f"{label:<{LABEL_WIDTH}}" + "".join(cells)


def measure(build: Build, events: int, rate: int, seconds: float) -> dict[str, float]:
    # Its output to a file, not a pipe: the role processes inherit it, and a pipe would not
    # reach its end while one of them outlived the run.
    with tempfile.TemporaryFile() as output:
        finished = subprocess.run(  # noqa: S603 (a checkout's own benchmark)
            build_command(build, events, rate, seconds),
            cwd=build.checkout,
            stdout=output,
            check=False,
        )
        output.seek(0)
        printed = output.read().decode(errors="replace")
    if finished.returncode:
        raise RuntimeError(f"{build.label}: exit {finished.returncode}:\n{printed[-3000:]}")
    return parse_figures(build.label, printed)


def compare(baseline: Path, rounds: int, events: int, rate: int, seconds: float) -> None:
    builds = {
        "baseline": Build("baseline", baseline / ".venv" / "bin" / "python", baseline),
        "this": Build("this", Path(sys.executable), ROOT),
    }
    print(
        f"messaging benchmark, this checkout against {baseline}, in turns: {rounds} "
        f"round{'s' if rounds != 1 else ''} of "
        f"{events} events drained, then {rate}/s offered for {seconds:g} s; "
        "CPU in us per event while draining, latency commit to handled",
        flush=True,
    )
    print(format_header(), flush=True)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in builds}
    for round_number in range(1, rounds + 1):
        for label in round_order(round_number):
            figures = measure(builds[label], events, rate, seconds)
            runs[label].append(figures)
            print(format_row(f"round {round_number} {label}", figures), flush=True)
    middle = {label: medians(figures) for label, figures in runs.items()}
    for label in builds:
        print(format_row(f"median {label}", middle[label]))
    print(format_row("this ÷ baseline", ratios(middle["this"], middle["baseline"]), ratio=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout with its own .venv (e.g. a git worktree of an earlier commit) whose "
        "build is measured in turns with this one",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --baseline")
    parser.add_argument("--role", choices=["relay", "consumer"])
    parser.add_argument("--database")
    parser.add_argument("--namespace")
    args = parser.parse_args()
    if args.baseline:
        baseline = args.baseline.resolve()
        for needed in (baseline / ".venv" / "bin" / "python", baseline / "bench" / "messaging.py"):
            if not needed.exists():
                parser.error(f"--baseline: {needed} is missing")
        compare(baseline, args.rounds, args.events, args.rate, args.seconds)
        return
    import uvloop

    if args.role:
        uvloop.run(role_main(args.role, args.database, args.namespace))
    else:
        uvloop.run(run(args.events, args.rate, args.seconds))


if __name__ == "__main__":
    main()
