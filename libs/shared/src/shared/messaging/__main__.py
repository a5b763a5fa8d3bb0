"""``python -m shared.messaging dlq list | show <queue> | replay <queue>``.

Settings come from the environment like any process (``COMMERCE_BROKER_URL``,
``COMMERCE_BROKER_NAMESPACE``); ``<queue>`` is a consuming purpose, its queue or its DLQ,
or (``show`` only: refusals are never replayed) its refused queue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.messaging.broker import Broker
from shared.messaging.dlq import (
    ReplayRefusedError,
    count_messages,
    list_dead_letter_queues,
    peek,
    replay,
    resolve_dlq,
)
from shared.settings import BaseServiceSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.messaging")
    groups = parser.add_subparsers(dest="group", required=True)
    dlq = groups.add_parser("dlq", help="dead-letter queues").add_subparsers(
        dest="command", required=True
    )
    dlq.add_parser("list", help="DLQs and refused queues of the namespace with their counts")
    show = dlq.add_parser(
        "show", help="messages of a DLQ or refused queue with why they are there (left in place)"
    )
    show.add_argument("queue")
    show.add_argument("--limit", type=int, default=20)
    show.add_argument("--body", action="store_true", help="print each body too")
    again = dlq.add_parser("replay", help="republish a DLQ's messages, then remove them")
    again.add_argument("queue")
    again.add_argument("--limit", type=int, default=None)
    again.add_argument(
        "--to-source-queue",
        action="store_true",
        help="only to the queue each message died in, not to every bound purpose",
    )
    return parser


async def _main(args: argparse.Namespace, settings: BaseServiceSettings) -> int:
    broker = Broker(settings)
    await broker.connect()
    try:
        if args.command == "list":
            for name, count in await list_dead_letter_queues(broker):
                print(f"{count:>8}  {name}")
            return 0
        queue = resolve_dlq(settings, args.queue)
        if args.command == "show":
            channel = await broker.channel()
            print(f"{queue}: {await count_messages(channel, queue)} messages")
            for letter in await peek(channel, queue, limit=args.limit):
                print(
                    f"- {letter.message_id} {letter.event_type} reason={letter.reason} "
                    f"queue={letter.source_queue} routing_key={letter.routing_key} "
                    f"deaths={letter.deaths} at={letter.dead_lettered_at}"
                )
                if args.body:
                    print(f"  {letter.body.decode(errors='replace')}")
            await channel.close()  # returns the peeked messages to their queue
            return 0
        try:
            count = await replay(
                broker, queue=queue, limit=args.limit, to_source_queue=args.to_source_queue
            )
        except ReplayRefusedError as exc:  # a refused queue
            print(exc, file=sys.stderr)
            return 2
        print(f"replayed {count} messages from {queue}")
        return 0
    finally:
        await broker.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(_main(args, BaseServiceSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
