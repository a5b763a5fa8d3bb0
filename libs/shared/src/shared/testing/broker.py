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


async def heal_dead_letter_supervisor() -> bool:
    """Restart the local broker's application if its dead-letter supervisor has died; whether
    it had to.

    RabbitMQ 3.10 restarts the at-least-once dead-letter worker of every quorum queue when its
    application starts; queues deleted in that instant (a test run cleaning up right after a
    restart test) crash those workers until ``rabbit_fifo_dlx_sup`` gives up, and from then on
    every new quorum queue with a dead-letter exchange fails. A run that restarted the broker
    must not leave it so for the next run.
    """
    if shutil.which("rabbitmqctl") is None:
        return False
    probe = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        "eval",
        "whereis(rabbit_fifo_dlx_sup).",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await asyncio.wait_for(probe.communicate(), timeout=60)
    if probe.returncode != 0 or stdout.strip() != b"undefined":
        return False
    logger.warning("RabbitMQ's dead-letter supervisor had died: restarting its application")
    for command in ("stop_app", "start_app", "await_startup"):
        step = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "-q",
            command,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(step.wait(), timeout=120)
    return True
