"""Remove a test run's exchanges and queues from the local broker."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil

import aio_pika

logger = logging.getLogger(__name__)


async def _rabbitmqctl_names(what: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        "--no-table-headers",
        what,
        "name",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return [line.strip() for line in stdout.decode().splitlines() if line.strip()]


async def delete_broker_namespace(namespace: str) -> None:
    """Delete every exchange and queue named ``{namespace}.…``.

    AMQP cannot list what exists, so the names come from ``rabbitmqctl`` on this machine;
    without it (a remote broker) nothing is done.
    """
    if not namespace or shutil.which("rabbitmqctl") is None:
        return
    prefix = f"{namespace}."
    try:
        queues = [
            name for name in await _rabbitmqctl_names("list_queues") if name.startswith(prefix)
        ]
        exchanges = [
            name for name in await _rabbitmqctl_names("list_exchanges") if name.startswith(prefix)
        ]
        url = os.environ.get("COMMERCE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
        connection = await aio_pika.connect(url, timeout=10)
        async with connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)
    except Exception:  # clean-up must never turn a green run red; say what was left
        logger.warning("could not clean the broker namespace %s", namespace, exc_info=True)
