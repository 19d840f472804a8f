"""RabbitMQ topology, declared in one place, idempotently (bus-anchors §1).

- each producing service owns a durable topic exchange `<service>.events`; routing key = event type;
- each producer also declares `<service>.events.archive`, a stream queue bound with `#`, so every
  event is routable (with `on_return_raises` an unbound type would otherwise block the relay);
- each consumer owns quorum queues `<consumer>` with an explicit delivery limit, its service's
  dead-letter exchange `<service>.dlx` (fanout) and queue `<service>.dlq`, at-least-once
  dead-lettering (which needs `x-overflow=reject-publish`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

if TYPE_CHECKING:
    from collections.abc import Mapping

    from faststream.rabbit import Channel, RabbitBroker

    from shared.consuming import ConsumerSpec

DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class Names:
    prefix: str = ""

    def events_exchange(self, service: str) -> str:
        return f"{self.prefix}{service}.events"

    def archive_queue(self, service: str) -> str:
        return f"{self.prefix}{service}.events.archive"

    def dlx(self, service: str) -> str:
        return f"{self.prefix}{service}.dlx"

    def dlq(self, service: str) -> str:
        return f"{self.prefix}{service}.dlq"

    def queue(self, consumer: str) -> str:
        return f"{self.prefix}{consumer}"


def events_exchange(names: Names, service: str, *, declare: bool = True) -> RabbitExchange:
    """A producer's exchange. Another service refers to it without declaring it (`declare=False`):
    its broker user may not configure another service's objects (docs/adr/0009); the producer,
    or provisioning, declares it."""
    return RabbitExchange(names.events_exchange(service), type=ExchangeType.TOPIC, durable=True,
                          declare=declare)


# How long the archive stream keeps events: it is how a subscriber added later catches up on the
# whole history (docs/events.md), so it outlives a campaign and its audit by years; the signed log
# in PostgreSQL stays the record either way.
ARCHIVE_RETENTION = "1825D"


def archive_queue(names: Names, service: str) -> RabbitQueue:
    return RabbitQueue(names.archive_queue(service), queue_type=QueueType.STREAM, routing_key="#",
                       arguments={"x-max-age": ARCHIVE_RETENTION})


def dead_letter_exchange(names: Names, service: str) -> RabbitExchange:
    return RabbitExchange(names.dlx(service), type=ExchangeType.FANOUT, durable=True)


def dead_letter_queue(names: Names, service: str) -> RabbitQueue:
    return RabbitQueue(names.dlq(service), queue_type=QueueType.QUORUM)


def consumer_queue(names: Names, consumer: str, service: str, first_routing_key: str) -> RabbitQueue:
    return RabbitQueue(
        names.queue(consumer), queue_type=QueueType.QUORUM, routing_key=first_routing_key,
        arguments={
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": names.dlx(service),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })


async def declare_consumer_queues(broker: RabbitBroker, names: Names,
                                  consumers: list[tuple[str, ConsumerSpec]],
                                  channels: Mapping[str, Channel] | None = None, *,
                                  declare_exchanges: bool = False) -> None:
    """Declare consumer queues and their bindings, idempotently.

    Provisioning (an administrator) declares every one of the system first, exchanges included
    (`declare_exchanges`), so a producer's relay can never publish an event before the queue that
    should receive it exists (it would reach only the archive). A service declares its own queues
    again at start, binding them to producers' exchanges it may read but not declare. The
    objects are the very ones each consumer declares, so the arguments always match. A consumer
    named in `channels` has its queue declared on that channel (the one it will consume on).
    """
    for service, spec in consumers:
        channel = (channels or {}).get(spec.name)
        exchange = await broker.declare_exchange(
            events_exchange(names, spec.producer, declare=declare_exchanges))
        queue = await broker.config.declarer.declare_queue(
            consumer_queue(names, spec.name, service, spec.event_types[0]), channel=channel)
        for event_type in spec.event_types:
            await queue.bind(exchange, routing_key=event_type)
