"""The aio-pika internals ``shared.compat.aio_pika`` builds on are still there, unchanged.

The gathered writes themselves are tested in ``messaging/test_transport.py``; these fail
first, and say why, when an upgrade of aio-pika or aiormq stops passing the factory on.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import UnderlayConnection
from yarl import URL

from shared.compat import aio_pika as compat
from shared.messaging.transport import CoalescingTransportFactory
from shared.settings import BaseServiceSettings


def test_aio_pika_is_the_release_the_compat_module_was_reviewed_against() -> None:
    assert aio_pika.__version__ == compat.REVIEWED_AIO_PIKA, (
        "aio-pika changed: review shared/compat/aio_pika.py (Connection.kwargs reaching "
        "aiormq.connect), then update REVIEWED_AIO_PIKA"
    )


def test_the_connections_kwargs_still_reach_aiormq_connect() -> None:
    assert "**self.kwargs" in inspect.getsource(aio_pika.Connection.connect)
    assert "aiormq.connect(" in inspect.getsource(UnderlayConnection.make_connection)
    parameter = inspect.signature(aiormq.Connection.__init__).parameters["transport_factory"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY or parameter.default is None


async def test_each_connect_and_reconnect_opens_through_the_factory() -> None:
    opened: list[URL] = []

    class CountingFactory(CoalescingTransportFactory):
        async def create(self, url: URL, **kwargs: Any) -> Any:
            opened.append(url)
            return await super().create(url, **kwargs)

    class CountingConnection(compat.RobustConnectionWithTransport):
        transport_factory = CountingFactory

    url = BaseServiceSettings.model_fields["broker_url"].default.get_secret_value()
    connection = await aio_pika.connect_robust(
        url, connection_class=CountingConnection, reconnect_interval=0.1
    )
    reconnected = asyncio.Event()
    connection.reconnect_callbacks.add(lambda *_: reconnected.set())
    try:
        assert len(opened) == 1
        channel = await connection.channel()
        assert (await channel.declare_queue(exclusive=True)).name
        # The AMQP connection under it breaks: the robust connection opens another.
        assert connection.transport is not None
        await connection.transport.connection.close(ConnectionResetError("cut"))
        await asyncio.wait_for(reconnected.wait(), timeout=30)
        assert len(opened) == 2
    finally:
        await connection.close()
