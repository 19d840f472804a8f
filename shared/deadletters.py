"""Dead letters: what consumers could not handle, and what a person decides about each.

Two places hold them, one per transport: the local transport's table `es.dead_letters` (one row
per consumer and event, with the reason), and RabbitMQ's `<service>.dlq` (the message as it
arrived, with `x-lookback-reason` and `x-lookback-consumer` when the consumer dead-lettered it, or
the broker's `x-death` when the delivery limit did). This module lists and shows them, and carries
out a person's decision:

- *replay*: the local transport's dead letter is handled again by its consumer, through the same
  `handle` as in production (it stays if it still fails); RabbitMQ's is published again to the
  consumer's own queue and removed from the DLQ once the broker confirmed the publish;
- *discard*: removed, never handled.

Each decision is itself an event, `deadletter.Replayed` or `deadletter.Discarded`, with who and
why, in the stream `deadletter-<consumer>`. The category `deadletter` belongs to the kernel (no
service names it; ADR 0007) and is owned by the kernel role `lookback_operator`.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg

from shared import topology
from shared.consuming import ConsumerRuntime, ConsumerSpec, Result, handle
from shared.envelope import Delivery
from shared.messages import Actor, Event, EventContract, RecordedEvent, new_event
from shared.store import PostgresEventStore

CATEGORY = "deadletter"


class DeadLetterReplayed(Event):
    """A person had a dead letter handled again; `outcome` is what the consumer did with it."""

    type_name: ClassVar[str] = "deadletter.Replayed"

    consumer: str
    event_id: str
    event_type: str
    source: str          # local | rabbitmq
    dead_reason: str
    why: str
    outcome: str         # handled | duplicate | rejected | dead_lettered | republished


class DeadLetterDiscarded(Event):
    """A person removed a dead letter without handling it."""

    type_name: ClassVar[str] = "deadletter.Discarded"

    consumer: str
    event_id: str
    event_type: str
    source: str
    dead_reason: str
    why: str


CONTRACT = EventContract(service="deadletter", categories=(CATEGORY,),
                         events=(DeadLetterReplayed, DeadLetterDiscarded))


def stream_of(consumer: str) -> str:
    return f"{CATEGORY}-{consumer}"


@dataclass
class DeadLetter:
    source: str
    consumer: str
    event_id: str
    event_type: str
    reason: str
    dead_at: str = ""
    position: int | None = None
    payload: dict[str, Any] | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        where = f"position {self.position}" if self.position else self.source
        return (f"{self.event_id}  {self.consumer}  {self.event_type}  {where}  {self.dead_at}\n"
                f"    reason: {self.reason}")


# ---------------------------------------------------------------------------------------------
# The local transport's table


async def local_dead_letters(conn: asyncpg.Connection | asyncpg.Pool, consumers: Sequence[str]
                             ) -> list[DeadLetter]:
    rows = await conn.fetch(
        """SELECT d.consumer, d.event_id::text AS event_id, d.event_type, d.global_position,
                  d.reason, d.dead_at, e.payload::text AS payload
             FROM es.dead_letters d LEFT JOIN es.events e ON e.event_id = d.event_id
            WHERE d.consumer = ANY($1::text[]) ORDER BY d.dead_at, d.consumer""", list(consumers))
    return [DeadLetter("local", r["consumer"], r["event_id"], r["event_type"], r["reason"],
                       r["dead_at"].isoformat(timespec="seconds"), r["global_position"],
                       json.loads(r["payload"]) if r["payload"] else None) for r in rows]


async def replay_local(pool: asyncpg.Pool, dead: DeadLetter, consumer: ConsumerSpec,
                       runtime: ConsumerRuntime[Any], now: datetime) -> Result:
    """Handle the dead letter's event again, as its consumer (`pool` acts as the consumer's
    service). The caller removes the row unless the outcome is dead again."""
    row = await pool.fetchrow(
        "SELECT *, (SELECT global_position FROM es.ledger l WHERE l.event_id = e.event_id) AS gp "
        "FROM es.events e WHERE event_id = $1", uuid.UUID(dead.event_id))
    if row is None:
        raise LookupError(f"event {dead.event_id} is not in the store")
    recorded = RecordedEvent(row["stream_id"], row["stream_version"], row["event_id"],
                             row["event_type"], row["schema_version"], _json(row["payload"]),
                             _json(row["metadata"]), global_position=row["gp"])
    delivery = Delivery.from_recorded(recorded, source=consumer.producer)
    return await handle(pool, consumer, delivery, runtime=runtime, clock=lambda: now)


async def discard_local(conn: asyncpg.Connection | asyncpg.Pool, dead: DeadLetter) -> None:
    await conn.execute("DELETE FROM es.dead_letters WHERE consumer = $1 AND event_id = $2",
                       dead.consumer, uuid.UUID(dead.event_id))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# RabbitMQ's dead-letter queue


class RabbitDeadLetters:
    """One service's DLQ. Messages are taken without acknowledgement; the ones not acted on go
    back to the queue when the channel closes (`close()`)."""

    def __init__(self, amqp_url: str, dlq: str, queue_of: Any) -> None:
        self.amqp_url, self.dlq, self.queue_of = amqp_url, dlq, queue_of
        # A message put back carries its publisher's login (RabbitMQ allows no other), and
        # consumers accept the operator's as long as the event matches the producer's ledger.
        self.username = unquote(urlsplit(amqp_url).username or "")
        self._connection: Any = None
        self._channel: Any = None
        self._taken: list[tuple[DeadLetter, Any]] = []

    async def open(self) -> list[DeadLetter]:
        """Every dead letter in the queue, oldest first (each held until `close`)."""
        self._connection = await aio_pika.connect(self.amqp_url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        queue = await self._channel.get_queue(self.dlq, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False, timeout=5)) is not None:
            self._taken.append((self._dead_letter(message), message))
        return [dead for dead, _ in self._taken]

    def _dead_letter(self, message: Any) -> DeadLetter:
        headers = dict(message.headers or {})
        consumer = headers.get("x-lookback-consumer")
        reason = headers.get("x-lookback-reason")
        if consumer is None:  # the broker dead-lettered it (delivery limit): x-death says where
            death = (headers.get("x-death") or [{}])[0]
            consumer = self.queue_of(str(death.get("queue", "?")))
            reason = (f"the broker dead-lettered it ({death.get('reason', '?')}, "
                      f"{death.get('count', '?')} time(s))")
        try:
            payload = json.loads(message.body)
        except ValueError:
            payload = None
        return DeadLetter("rabbitmq", _text(consumer), _text(message.message_id or "?"),
                          _text(message.type or headers.get("ce-type") or "?"), _text(reason),
                          str(headers.get("ce-time", "")), None,
                          payload if isinstance(payload, dict) else None, headers)

    def find(self, event_id: str) -> tuple[DeadLetter, Any]:
        for dead, message in self._taken:
            if dead.event_id == event_id:
                return dead, message
        raise LookupError(f"no dead letter {event_id} in {self.dlq}")

    async def republish(self, dead: DeadLetter, message: Any, queue: str) -> None:
        """Publish the message as it first came to the consumer's own queue, then drop it here."""
        headers = {k: v for k, v in dead.headers.items()
                   if k not in ("x-death", "x-lookback-reason", "x-lookback-consumer",
                                "x-lookback-published-by")
                   and not k.startswith("x-first-death") and not k.startswith("x-last-death")}
        await self._channel.default_exchange.publish(
            aio_pika.Message(message.body, headers=headers, message_id=message.message_id,
                             content_type=message.content_type, type=message.type,
                             correlation_id=message.correlation_id, app_id=message.app_id,
                             user_id=self.username or None, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue, mandatory=True)
        await message.ack()

    async def drop(self, message: Any) -> None:
        await message.ack()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()  # what was not acknowledged goes back to the queue


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------
# The decision, recorded


async def record(store: PostgresEventStore, decision: Event, consumer: str, actor: Actor,
                 now: datetime) -> None:
    """Append the decision to `deadletter-<consumer>` (its own stream: who, why, what came of it)."""
    await store.append([new_event(stream_of(consumer), decision, actor=actor, occurred_at=now)])


async def measure_depth(runtime: Any, gauge: Any, conn: Any = None) -> None:
    """Set the service's dead-letter depth: rows per consumer of the local table, and the messages
    in its RabbitMQ DLQ when it runs on RabbitMQ (an unreachable broker leaves that one unset).
    `conn`: the metrics sampler's own connection (shared/health.py); else the service's pool."""
    consumers = [c.name for c in (*runtime.spec.consumers, *runtime.spec.projections)]
    counts = dict(await (conn or runtime.pool).fetch(
        "SELECT consumer, count(*) FROM es.dead_letters WHERE consumer = ANY($1::text[]) "
        "GROUP BY consumer", consumers))
    for consumer in consumers:
        gauge.labels(consumer).set(counts.get(consumer, 0))
    transport = runtime.transport
    names = getattr(transport, "names", None)
    if names is not None and getattr(transport, "_started", False):
        queue = await transport.broker.declare_queue(
            topology.dead_letter_queue(names, runtime.spec.name))
        declared = await queue.declare()  # again: the broker's object is cached, its count is not
        gauge.labels(names.dlq(runtime.spec.name)).set(declared.message_count)
