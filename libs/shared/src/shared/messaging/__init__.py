"""Events between services: envelope, outbox and relay, idempotent consumers, topology.

The API a service uses::

    outbox = Outbox(OutboxEvent)                         # OutboxEvent(OutboxMixin, Base)
    await outbox.add(session, Envelope.new(StockReserved(...)))   # inside its transaction
    consumer = Consumer(name="orders.saga", handlers={...}, inbox=ProcessedEvent)
    sweep = PeriodicJob("reservation sweep", interval=30.0, run=sweep_once)
    await run_worker(settings, consumers=[consumer], outbox=outbox, jobs=[sweep])  # worker's run
    worker_main(get_settings(), run)                     # worker.py's main()
"""

from shared.messaging.broker import Broker, BrokerUnavailableError, Publisher
from shared.messaging.consumer import Consumer, RunningConsumer
from shared.messaging.envelope import Envelope, MalformedEventError, decode
from shared.messaging.handlers import (
    BatchHandler,
    EventHandler,
    PreparedBatchHandler,
    PreparedHandler,
)
from shared.messaging.inbox import InboxMixin
from shared.messaging.jobs import PeriodicJob
from shared.messaging.outbox import Outbox, OutboxMixin
from shared.messaging.readiness import register_broker_check
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import declare_exchanges, declare_queue, delete_topology
from shared.messaging.worker import prepare_worker_process, run_worker, worker_main

__all__ = [
    "BatchHandler",
    "Broker",
    "BrokerUnavailableError",
    "Consumer",
    "Envelope",
    "EventHandler",
    "InboxMixin",
    "MalformedEventError",
    "Outbox",
    "OutboxMixin",
    "OutboxRelay",
    "PeriodicJob",
    "PreparedBatchHandler",
    "PreparedHandler",
    "Publisher",
    "RunningConsumer",
    "declare_exchanges",
    "declare_queue",
    "decode",
    "delete_topology",
    "prepare_worker_process",
    "register_broker_check",
    "run_worker",
    "worker_main",
]
