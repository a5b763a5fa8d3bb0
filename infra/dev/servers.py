"""Make sure PostgreSQL, RabbitMQ and Redis answer here: install and start any that does not.

    python infra/dev/servers.py [--servers install|skip] [--dry-run]
    python infra/dev/servers.py --compose-env .env   # the exports after make infra

A server that answers is left alone. One that does not, on a loopback address, is installed
from the distribution's packages when its program is missing (apt-get), then started: through
systemctl when systemd runs, else by its own command. Commands run as root, or through sudo,
and each is printed before it runs. ``--servers skip`` (``make ... SERVERS=skip``) changes
nothing: it says what is down and how to start it. ``--dry-run`` prints the commands it would
run and runs none. Only the standard library: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
APT_ENV = ("env", "DEBIAN_FRONTEND=noninteractive")
# pg_hba.conf lines put first in a cluster this script installed (see trust_commands).
TRUST_LOOPBACK = ("host all all 127.0.0.1/32 trust", "host all all ::1/128 trust")
START_SECONDS = 60.0


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int
    package: str  # the Debian package
    program: str  # on PATH once the package is installed
    unit: str  # the systemd unit the package installs

    @property
    def local(self) -> bool:
        return self.host in LOOPBACK


@dataclass(frozen=True)
class Machine:
    """What decides the commands: who runs them, what is installed, whether systemd runs."""

    euid: int
    path: str
    systemd: bool
    etc_postgresql: Path = Path("/etc/postgresql")

    @classmethod
    def this_one(cls) -> Machine:
        return cls(
            euid=os.geteuid(),
            path=os.environ.get("PATH", ""),
            systemd=Path("/run/systemd/system").is_dir(),
        )

    def has(self, program: str) -> bool:
        return shutil.which(program, path=self.path) is not None

    def privilege(self) -> list[str] | None:
        """The prefix that runs a command as root: none for root, sudo, or None (neither)."""
        if self.euid == 0:
            return []
        return ["sudo"] if self.has("sudo") else None

    def postgres_version(self) -> str:
        """The installed cluster's version (its folder in /etc/postgresql), or the shell
        words that find it once the package is installed."""
        if self.etc_postgresql.is_dir():
            versions = sorted(entry.name for entry in self.etc_postgresql.iterdir())
            if versions:
                return versions[-1]
        return f"$(ls {self.etc_postgresql})"


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def servers(env: dict[str, str] | os._Environ[str] = os.environ) -> list[Server]:
    """The three servers where the settings (``COMMERCE_*``, as the processes read them) say."""
    db = (env.get("COMMERCE_DB_HOST", "127.0.0.1"), int(env.get("COMMERCE_DB_PORT", "5432")))
    broker = _address(env.get("COMMERCE_BROKER_URL", "amqp://127.0.0.1:5672/"), 5672)
    redis = _address(env.get("COMMERCE_REDIS_URL", "redis://127.0.0.1:6379/0"), 6379)
    return [
        Server("PostgreSQL", *db, "postgresql", "pg_ctlcluster", "postgresql"),
        Server("RabbitMQ", *broker, "rabbitmq-server", "rabbitmq-server", "rabbitmq-server"),
        Server("Redis", *redis, "redis-server", "redis-server", "redis-server"),
    ]


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def start_command(server: Server, machine: Machine) -> list[str]:
    """How this machine starts the server: its systemd unit, else the server's own command."""
    if machine.systemd:
        return ["systemctl", "start", server.unit]
    if server.name == "PostgreSQL":
        version = machine.postgres_version()
        return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
    if server.name == "RabbitMQ":
        return ["rabbitmq-server", "-detached"]
    return [
        "redis-server", "--daemonize", "yes", "--bind", server.host, "--port", str(server.port),
        "--save", "", "--appendonly", "no",
    ]  # fmt: skip


def install_commands(missing: Sequence[Server]) -> list[list[str]]:
    """apt-get for the packages of the servers whose program is missing."""
    if not missing:
        return []
    packages = [server.package for server in missing]
    return [
        [*APT_ENV, "apt-get", "update", "-qq"],
        [*APT_ENV, "apt-get", "install", "-y", "-qq", *packages],
    ]


def trust_commands(machine: Machine) -> list[list[str]]:
    """A fresh cluster trusts connections over loopback, as the project's settings expect:
    the superuser and the services' roles connect without a password."""
    hba = f"{machine.etc_postgresql}/{machine.postgres_version()}/main/pg_hba.conf"
    return [["sed", "-i", f"1i {line}", hba] for line in TRUST_LOOPBACK]


def reload_command(machine: Machine) -> list[str]:
    if machine.systemd:
        return ["systemctl", "reload", "postgresql"]
    version = machine.postgres_version()
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload"]


@dataclass
class Plan:
    """What to install and start for the servers that are down, and what cannot be done."""

    install: list[Server] = field(default_factory=list)
    start: list[Server] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def plan(down: Sequence[Server], machine: Machine) -> Plan:
    result = Plan()
    for server in down:
        if not server.local:
            result.problems.append(
                f"{server.name} does not answer on {server.host}:{server.port}, which is not "
                "this machine: start it there, or point the settings at a running one"
            )
    local = [server for server in down if server.local]
    missing = [server for server in local if not machine.has(server.program)]
    if missing and not machine.has("apt-get"):
        names = ", ".join(server.name for server in missing)
        result.problems.append(f"{names}: not installed, and no apt-get here to install it")
        local = [server for server in local if server not in missing]
        missing = []
    result.install = missing
    result.start = local
    return result


def shown(command: Sequence[str]) -> str:
    """The command as a shell would read it (the cluster's version left for it to find)."""
    return " ".join(word if "$(" in word else shlex.quote(word) for word in command)


def report_down(down: Sequence[Server], machine: Machine) -> None:
    for server in down:
        print(f"{server.name} does not answer on {server.host}:{server.port}. Start it with:")
        print(f"  {shown(start_command(server, machine))}")


class Runner:
    """Prints each command with its prefix (none for root, sudo), then runs it unless dry."""

    def __init__(self, prefix: Sequence[str], *, dry_run: bool) -> None:
        self.prefix = list(prefix)
        self.dry_run = dry_run

    def __call__(self, command: Sequence[str]) -> bool:
        full = [*self.prefix, *command]
        print(f"  + {shown(full)}", flush=True)
        return self.dry_run or subprocess.run(full, check=False).returncode == 0  # noqa: S603


def wait_for(server: Server, probe: Callable[[str, int], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe(server.host, server.port):
            return True
        time.sleep(0.5)
    return False


def ensure(
    all_servers: Sequence[Server],
    machine: Machine,
    *,
    dry_run: bool,
    probe: Callable[[str, int], bool] = answers,
) -> int:
    """Install and start what is down (or, dry, print how); 0 once every server answers."""
    down = [server for server in all_servers if not probe(server.host, server.port)]
    if not down:
        return 0
    steps = plan(down, machine)
    prefix = machine.privilege()
    if prefix is None and steps.start:
        print("Neither root nor sudo here: as root, install and start these, then try again:")
        report_down(steps.start, machine)
        return 1
    run = Runner(prefix or [], dry_run=dry_run)
    who = "through sudo" if prefix else "as root"
    ok = True
    if steps.install:
        names = ", ".join(server.name for server in steps.install)
        print(
            f"Installing {names} from the distribution's packages ({who}; SERVERS=skip opts out):"
        )
        ok = all(run(command) for command in install_commands(steps.install))
        if ok and any(server.name == "PostgreSQL" for server in steps.install):
            print("Letting the new PostgreSQL cluster trust connections over loopback:")
            ok = all(run(command) for command in trust_commands(machine))
            postgres = next(server for server in steps.install if server.name == "PostgreSQL")
            if ok and not dry_run and probe(postgres.host, postgres.port):
                ok = run(reload_command(machine))
    for server in steps.start if ok else []:
        if not dry_run and probe(server.host, server.port):
            continue  # started by its package's scripts
        print(f"{server.name} does not answer on {server.host}:{server.port}: starting it ({who}):")
        if not run(start_command(server, machine)):
            ok = False
        elif not dry_run and not wait_for(server, probe, START_SECONDS):
            print(f"{server.name} still does not answer on {server.host}:{server.port}")
            ok = False
    for problem in steps.problems:
        print(problem)
    return 0 if ok and not steps.problems else 1


def compose_exports(env_file: str) -> list[str]:
    """The environment that points ``make dev`` at the servers ``make infra`` started on
    Docker Compose, with the passwords of its ``.env``."""
    values = {}
    for line in Path(env_file).read_text().splitlines():
        name, equals, value = line.partition("=")
        if equals and not name.startswith("#"):
            values[name.strip()] = value.strip()
    exports = {
        "COMMERCE_DB_ADMIN_URL": (
            f"postgresql://postgres:{values['POSTGRES_PASSWORD']}@127.0.0.1:5432/postgres"
        ),
        "COMMERCE_BROKER_URL": f"amqp://admin:{values['RABBITMQ_ADMIN_PASSWORD']}@127.0.0.1:5672/",
        "COMMERCE_REDIS_URL": f"redis://:{values['REDIS_PASSWORD']}@127.0.0.1:6379/0",
    }
    for service in ("GATEWAY", "INVENTORY", "ORDERS", "PAYMENTS"):
        exports[f"{service}_DB_PASSWORD"] = values[f"{service}_DB_PASSWORD"]
    return [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--servers", choices=("install", "skip"), default="install")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    parser.add_argument("--compose-env", metavar="FILE", help="print the exports for make infra")
    args = parser.parse_args(argv)
    if args.compose_env:
        print("\n".join(compose_exports(args.compose_env)))
        return 0
    machine = Machine.this_one()
    if args.servers == "skip":
        down = [server for server in servers() if not answers(server.host, server.port)]
        report_down(down, machine)
        return 1 if down else 0
    return ensure(servers(), machine, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
