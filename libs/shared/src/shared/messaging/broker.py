"""One robust AMQP connection per process, and the channels it keeps alive.

aio-pika's robust connection holds channels (and a channel its queues and consumers) in weak
collections: whatever nobody references is not restored after a reconnect. The ``Broker``
keeps a strong reference to every channel it opens; consumers keep theirs to queues.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec

from shared.messaging.topology import declare_exchanges
from shared.messaging.transport import CoalescingRobustConnection
from shared.settings import BaseServiceSettings


class BrokerUnavailableError(ConnectionError):
    """The broker connection is down (reconnecting) or was never opened."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One event ready to publish: its id, type (the routing key), JSON body, and the AMQP
    headers it travels with (its trace context: ``shared.tracing.messaging``)."""

    event_id: str
    event_type: str
    body: bytes
    headers: Mapping[str, str] | None = None


class Broker:
    """The process's connection to RabbitMQ; open with ``connect()``, close with ``close()``."""

    def __init__(self, settings: BaseServiceSettings) -> None:
        self.settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channels: list[AbstractRobustChannel] = []  # strong references (see module doc)
        self._publisher: Publisher | None = None

    async def connect(self) -> None:
        """Open the robust connection (once) and declare the exchanges."""
        if self._connection is not None:
            return
        settings = self.settings
        settings.refuse_placeholder_broker_password()
        self._connection = await aio_pika.connect_robust(
            settings.broker_url.get_secret_value(),
            heartbeat=settings.broker_heartbeat_seconds,
            reconnect_interval=settings.broker_reconnect_interval_seconds,
            client_properties={"connection_name": settings.service_name},
            connection_class=CoalescingRobustConnection,  # writes gathered (messaging.transport)
        )
        channel = await self.channel()
        await declare_exchanges(channel, settings=settings)

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailableError("the broker connection is not open")
        return self._connection

    async def channel(
        self, *, prefetch: int | None = None, on_return_raises: bool = False
    ) -> AbstractRobustChannel:
        """A new channel with publisher confirms, held for the life of the broker."""
        channel = await self.connection.channel(
            publisher_confirms=True, on_return_raises=on_return_raises
        )
        assert isinstance(channel, AbstractRobustChannel)  # a robust connection's channel
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        self._channels.append(channel)
        return channel

    async def publisher(self) -> Publisher:
        """The shared publisher (mandatory routing, confirms awaited per batch)."""
        if self._publisher is None:
            channel = await self.channel(on_return_raises=True)
            events, _ = await declare_exchanges(channel, settings=self.settings)
            self._publisher = Publisher(
                events, channel, timeout=self.settings.broker_publish_timeout_seconds
            )
        return self._publisher

    def is_connected(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def check(self) -> None:
        """Readiness: raise unless the connection is up."""
        if not self.is_connected():
            raise BrokerUnavailableError("not connected to the broker")

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._channels.clear()
        self._publisher = None
        if connection is not None:
            await connection.close()


PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


class Publisher:
    """Publishes events persistent, mandatory, to the events exchange, keyed by type."""

    def __init__(
        self, exchange: AbstractExchange, channel: AbstractRobustChannel, *, timeout: float
    ) -> None:
        self.exchange = exchange
        self.channel = channel  # the exchange's, opened with on_return_raises
        self.timeout = timeout

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish one event; return once the broker confirmed it, raise otherwise.

        Raises ``aio_pika.exceptions.PublishError`` when no queue is bound for the type
        (the channel raises on returns), ``DeliveryError`` on a nack, or a connection error.
        """
        channel = self.channel
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel!r} is closed")
        # aiormq's channel directly, as aio-pika's ``Exchange.publish`` itself does, without
        # building an aio-pika ``Message`` first. ``wait=False``: the confirm is awaited, so
        # waiting for the frame to reach the socket before that would only make each publish
        # of a batch wait for the previous one's write (the channel's lock is held meanwhile).
        # aiormq's abstract channel does not declare ``wait``; its one channel class has it.
        underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
        await underlay.basic_publish(
            message.body,
            exchange=self.exchange.name,
            routing_key=message.event_type,
            properties=spec.Basic.Properties(
                content_type="application/json",
                delivery_mode=PERSISTENT,
                message_id=message.event_id,
                message_type=message.event_type,
                headers=dict(message.headers) if message.headers else None,
            ),
            mandatory=True,
            timeout=self.timeout,
            wait=False,
        )

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """Publish all, confirms awaited together; per message ``None`` or the failure."""
        results = await asyncio.gather(
            *(self.publish(message) for message in messages), return_exceptions=True
        )
        return [result if isinstance(result, BaseException) else None for result in results]
