"""The first minutes on a fresh machine (infra/dev/servers.py): which servers are down, and the
commands that would install and start them, as dry runs on simulated machines. Nothing here
installs, starts or stops a server: the real ones are shared by every test run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.dev import servers
from infra.dev.servers import Machine, Server

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "infra" / "dev" / "servers.py"
EVERY_PROGRAM = ("apt-get", "sudo", "pg_ctlcluster", "rabbitmq-server", "redis-server")


def _bin(tmp_path: Path, *programs: str) -> str:
    """A PATH of stand-ins that fail if ever run (a dry run runs none)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for program in programs:
        stand_in = folder / program
        stand_in.write_text("#!/bin/sh\nexit 1\n")
        stand_in.chmod(0o755)
    return str(folder)


def _machine(tmp_path: Path, *programs: str, euid: int = 0, systemd: bool = False) -> Machine:
    etc = tmp_path / "etc-postgresql"
    (etc / "15").mkdir(parents=True, exist_ok=True)
    return Machine(euid=euid, path=_bin(tmp_path, *programs), systemd=systemd, etc_postgresql=etc)


def _three(host: str = "127.0.0.1") -> list[Server]:
    env = {
        "COMMERCE_DB_HOST": host,
        "COMMERCE_DB_PORT": "5432",
        "COMMERCE_BROKER_URL": f"amqp://guest:guest@{host}:5672/",
        "COMMERCE_REDIS_URL": f"redis://{host}:6379/0",
    }
    return servers.servers(env)


def _down(host: str, port: int) -> bool:
    return False


def _dry(capsys: pytest.CaptureFixture[str], machine: Machine, found: list[Server]) -> str:
    code = servers.ensure(found, machine, dry_run=True, probe=_down)
    out = capsys.readouterr().out
    return f"exit {code}\n{out}"


def test_servers_that_answer_are_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = _machine(tmp_path, *EVERY_PROGRAM)
    assert servers.ensure(_three(), machine, dry_run=True, probe=lambda host, port: True) == 0
    assert capsys.readouterr().out == ""


def test_missing_servers_are_installed_from_packages_and_started_as_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _dry(capsys, _machine(tmp_path, "apt-get"), _three())
    hba = tmp_path / "etc-postgresql" / "15" / "main" / "pg_hba.conf"
    expected = [
        "exit 0",
        "  + env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        "  + env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql "
        "rabbitmq-server redis-server",
        f"  + sed -i '1i host all all 127.0.0.1/32 trust' {hba}",
        f"  + sed -i '1i host all all ::1/128 trust' {hba}",
        "  + pg_ctlcluster --skip-systemctl-redirect 15 main start",
        "  + rabbitmq-server -detached",
        "  + redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    ]
    commands = [line for line in out.splitlines() if line.startswith(("exit", "  + "))]
    assert commands == expected
    assert "as root; SERVERS=skip opts out" in out


def test_installed_servers_are_started_by_systemd_when_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _dry(capsys, _machine(tmp_path, *EVERY_PROGRAM, systemd=True), _three())
    commands = [line for line in out.splitlines() if line.startswith("  + ")]
    assert commands == [
        "  + systemctl start postgresql",
        "  + systemctl start rabbitmq-server",
        "  + systemctl start redis-server",
    ]


def test_without_root_every_command_goes_through_sudo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = _machine(tmp_path, "apt-get", "sudo", "redis-server", euid=1000)
    out = _dry(capsys, machine, _three())
    commands = [line for line in out.splitlines() if line.startswith("  + ")]
    assert commands
    assert all(line.startswith("  + sudo ") for line in commands)
    assert "install -y -qq postgresql rabbitmq-server\n" in out  # Redis is installed already
    assert "through sudo" in out


def test_without_root_or_sudo_it_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _dry(capsys, _machine(tmp_path, *EVERY_PROGRAM[2:], euid=1000), _three())
    assert out.startswith("exit 1\nNeither root nor sudo")
    assert "  rabbitmq-server -detached" in out
    assert "  + " not in out


def test_without_apt_a_missing_server_is_reported_not_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _dry(capsys, _machine(tmp_path, "rabbitmq-server"), _three())
    assert out.startswith("exit 1\n")
    assert "PostgreSQL, Redis: not installed, and no apt-get here" in out
    assert [line for line in out.splitlines() if line.startswith("  + ")] == [
        "  + rabbitmq-server -detached"
    ]


def test_a_server_on_another_machine_is_never_installed_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _dry(capsys, _machine(tmp_path, *EVERY_PROGRAM), _three("db.example.net"))
    assert out.startswith("exit 1\n")
    assert "  + " not in out
    assert "RabbitMQ does not answer on db.example.net:5672, which is not this machine" in out


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def open_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _script(
    tmp_path: Path, *args: str, db: int, broker: int, redis: int
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": _bin(tmp_path, "apt-get", "sudo"),
        "COMMERCE_DB_PORT": str(db),
        "COMMERCE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{broker}/",
        "COMMERCE_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
    }
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_the_command_line_dry_run_on_this_machine(
    tmp_path: Path, closed_port: int, open_port: int
) -> None:
    done = _script(tmp_path, "--dry-run", db=open_port, broker=closed_port, redis=closed_port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PostgreSQL" not in done.stdout  # it answers: left alone
    assert "apt-get install -y -qq rabbitmq-server redis-server\n" in done.stdout
    if Path("/run/systemd/system").is_dir():
        assert "systemctl start redis-server" in done.stdout
    else:
        assert f"redis-server --daemonize yes --bind 127.0.0.1 --port {closed_port}" in done.stdout


def test_servers_skip_only_says_how_to_start_them(
    tmp_path: Path, closed_port: int, open_port: int
) -> None:
    done = _script(tmp_path, "--servers", "skip", db=closed_port, broker=open_port, redis=open_port)
    assert done.returncode == 1
    assert done.stdout.startswith(f"PostgreSQL does not answer on 127.0.0.1:{closed_port}.")
    assert "apt-get" not in done.stdout
    assert "  + " not in done.stdout


def test_make_infra_prints_the_environment_of_the_compose_servers(tmp_path: Path) -> None:
    names = ["POSTGRES", "RABBITMQ_ADMIN", "REDIS", "GATEWAY_DB", "INVENTORY_DB"]
    names += ["ORDERS_DB", "PAYMENTS_DB"]
    env_file = tmp_path / ".env"
    env_file.write_text("# a comment\n" + "".join(f"{name}_PASSWORD=pw-{name}\n" for name in names))
    exports = servers.compose_exports(str(env_file))
    assert (
        "export COMMERCE_DB_ADMIN_URL=postgresql://postgres:pw-POSTGRES@127.0.0.1:5432/postgres"
        in exports
    )
    assert "export COMMERCE_BROKER_URL=amqp://admin:pw-RABBITMQ_ADMIN@127.0.0.1:5672/" in exports
    assert "export COMMERCE_REDIS_URL=redis://:pw-REDIS@127.0.0.1:6379/0" in exports
    assert "export ORDERS_DB_PASSWORD=pw-ORDERS_DB" in exports


def _fake_python(folder: Path, name: str, version: tuple[int, int]) -> None:
    """A stand-in interpreter that reports ``version`` and answers the Makefile's check."""
    program = folder / name
    program.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.exit({version!r} < (3, 11))'\n"
    )
    program.chmod(0o755)


def _make(path: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """make run with PATH limited to ``path``: no interpreter of the machine's is found."""
    make = shutil.which("make")
    assert make is not None
    return subprocess.run(
        [make, "-s", "--no-print-directory", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": path, "HOME": os.environ.get("HOME", "/")},
        timeout=60,
    )


def _chosen(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("PYTHON :=")]
    assert lines, result.stderr
    return lines[0].removeprefix("PYTHON :=").strip()


@pytest.mark.parametrize(
    ("installed", "chosen"),
    [
        (("python3.11", "python3.12"), "python3.11"),
        (("python3.12",), "python3.12"),
        (("python3.13", "python3"), "python3.13"),
    ],
    ids=["3.11 preferred", "3.12 alone", "3.13"],
)
def test_make_picks_the_first_python_of_3_11_or_newer_on_the_path(
    tmp_path: Path, installed: tuple[str, ...], chosen: str
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in installed:
        minor = int(name.removeprefix("python3.")) if "." in name else 11
        _fake_python(folder, name, (3, minor))
    assert _chosen(_make(str(folder), "-p", "-n", "help")) == str(folder / chosen)


def test_make_refuses_a_python_older_than_3_11(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    _fake_python(folder, "python3", (3, 9))
    check = _make(str(folder), "check-python")
    assert check.returncode != 0
    assert "older than 3.11" in check.stdout


@pytest.mark.parametrize(("uid", "command"), [("0", "apt-get"), ("1000", "sudo apt-get")])
def test_make_installs_packages_as_root_or_through_sudo(
    tmp_path: Path, uid: str, command: str
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    _fake_python(folder, "python3.11", (3, 11))
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "id").chmod(0o755)
    printed = _make(str(folder), "-p", "-n", "help").stdout.splitlines()
    assert f"APT_GET := {command}" in printed
