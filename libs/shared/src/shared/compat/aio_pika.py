"""aio-pika's robust connection, each AMQP connection under it opened by a transport factory.

aiormq takes a ``transport_factory`` (a public parameter of its connection), but aio-pika
keeps only the parameters it knows from ``connect_robust``, so there is no public way to
hand it one. What aio-pika does with the parameters it kept is pass its ``kwargs`` to
``aiormq.connect`` on every connect, including each reconnect of a robust connection after
a broker restart: the factory is put there. It buys the gathered socket writes of
``shared.messaging.transport``; without it every AMQP frame is a system call of its own.

``libs/shared/tests/test_compat_aio_pika.py`` checks the internals this relies on.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aio_pika
from aiormq.connection import TransportFactory
from yarl import URL

# The aio-pika release this module was read against; the test fails on any other.
REVIEWED_AIO_PIKA = "10.2.1"


class RobustConnectionWithTransport(aio_pika.RobustConnection):
    """A robust connection whose underlying connections ``transport_factory`` opens: a
    subclass names the factory and is passed as ``connection_class`` to ``connect_robust``."""

    transport_factory: ClassVar[type[TransportFactory]]

    def __init__(self, url: URL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.kwargs["transport_factory"] = self.transport_factory()
