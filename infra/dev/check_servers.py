"""Check that the local servers the platform needs answer; say how to start any that does not."""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

START_COMMANDS = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "RabbitMQ": "rabbitmq-server -detached",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def servers() -> dict[str, tuple[str, int]]:
    env = os.environ.get
    return {
        "PostgreSQL": (env("COMMERCE_DB_HOST", "127.0.0.1"), int(env("COMMERCE_DB_PORT", "5432"))),
        "RabbitMQ": _address(env("COMMERCE_BROKER_URL", "amqp://127.0.0.1:5672/"), 5672),
        "Redis": _address(env("COMMERCE_REDIS_URL", "redis://127.0.0.1:6379/0"), 6379),
    }


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def main() -> int:
    down = [name for name, (host, port) in servers().items() if not answers(host, port)]
    for name in down:
        host, port = servers()[name]
        print(f"{name} does not answer on {host}:{port}. Start it with:\n  {START_COMMANDS[name]}")
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
