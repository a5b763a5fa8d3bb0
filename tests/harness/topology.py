"""Remove what a platform run declared on the shared broker, and its keys in Redis."""

from __future__ import annotations

from shared.messaging import Broker, delete_topology
from shared.settings import BaseServiceSettings
from shared.testing.redis_keys import delete_redis_namespace

PURPOSES = (
    "inventory.reservations",
    "inventory.stock-alerts",
    "orders.saga",
    "orders.catalog",
    "payments.requests",
)


async def delete_namespace(namespace: str) -> None:
    # Also run outside pytest (by the benchmarks): the local broker's development credentials.
    settings = BaseServiceSettings(environment="development", broker_namespace=namespace)
    broker = Broker(settings)
    await broker.connect()
    try:
        channel = await broker.channel()
        await delete_topology(channel, settings=settings, purposes=PURPOSES)
    finally:
        await broker.close()
        await delete_redis_namespace(namespace)
