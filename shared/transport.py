"""Two transports with the same delivery semantics, so the same handler code runs in both.

- RabbitTransport: FastStream 0.7 over aio-pika; the relay publishes sequenced events with
  confirms, consumers ack only after their transaction committed.
- LocalTransport (embedded mode): each consumer tails the sequenced ledger directly, handling each
  event and advancing its position in one transaction. At-least-once in, exactly-once effects.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import aio_pika
import asyncpg
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared import topology
from shared.consuming import (
    Clock,
    ConsumerRuntime,
    ConsumerSpec,
    Outcome,
    Result,
    handle,
    handle_in_transaction,
    log_outcome,
    utc_now,
)
from shared.envelope import Delivery, Outgoing, cloud_event_headers
from shared.errors import TransientError
from shared.logging import get_logger
from shared.messages import Event
from shared.metrics import Metrics
from shared.positions import advance_position, get_position

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = get_logger()

# Transient failures: retried in process after these pauses, then requeued so the quorum queue's
# delivery limit counts them, then dead-lettered by the broker. Bounded at every level.
RETRY_DELAYS = (0.2, 0.8, 3.2)


class RabbitTransport:
    def __init__(self, *, service: str, amqp_url: str, names: topology.Names, pool: asyncpg.Pool,
                 runtime: ConsumerRuntime[Any], metrics: Metrics,
                 own_events: Sequence[type[Event]] = (), clock: Clock = utc_now,
                 publish_timeout: float = 10.0, graceful_timeout: float = 30.0, prefetch: int = 16,
                 retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self.retry_delays = tuple(retry_delays)
        self.service, self.names, self.pool, self.runtime = service, names, pool, runtime
        self.metrics, self.clock = metrics, clock
        self.publish_timeout = publish_timeout
        self.broker = RabbitBroker(
            amqp_url,
            # Unroutable publishes must fail, not be silently "returned" (bus-anchors P3).
            default_channel=Channel(publisher_confirms=True, on_return_raises=True),
            graceful_timeout=graceful_timeout, app_id=service, logger=None,
        )
        self._exchange = topology.events_exchange(names, service)
        self._publishers = {
            cls.type_name: self.broker.publisher(
                exchange=self._exchange, routing_key=cls.type_name, persist=True, mandatory=True,
                timeout=publish_timeout, schema=cls, title=f"{service}.events:{cls.type_name}",
                description=(cls.__doc__ or "").strip())
            for cls in own_events}
        self._consumers: list[tuple[ConsumerSpec, Any]] = []
        self._channel = Channel(prefetch_count=prefetch)
        self._started = False
        self._exchange_obj: Any = None

    # -- consuming ---------------------------------------------------------------------------
    def add_consumer(self, spec: ConsumerSpec) -> None:
        queue = topology.consumer_queue(self.names, spec.name, self.service, spec.event_types[0])
        exchange = topology.events_exchange(self.names, spec.producer)

        async def on_message(msg: RabbitMessage) -> None:
            await self._on_message(spec, msg)

        on_message.__name__ = f"on_{spec.name.replace('.', '_').replace('-', '_')}"
        subscriber = self.broker.subscriber(
            queue, exchange, channel=self._channel, ack_policy=AckPolicy.MANUAL, no_reply=True,
            title=f"{spec.name}", description=f"{spec.producer} events: {', '.join(spec.event_types)}",
        )
        subscriber(on_message)
        self._consumers.append((spec, subscriber))

    async def _on_message(self, spec: ConsumerSpec, msg: Any) -> None:
        raw = msg.raw_message
        try:
            delivery = Delivery.from_amqp(raw.body, raw.headers, raw.message_id)
        except ValueError as exc:
            await self._dead_letter(spec, msg, str(exc))
            return
        for attempt, delay in enumerate(self.retry_delays):
            try:
                result = await handle(self.pool, spec, delivery, runtime=self.runtime,
                                      clock=self.clock)
                break
            except TransientError as exc:
                self.metrics.failed.labels(spec.name).inc()
                log.warning("message_retry", consumer=spec.name, event_id=str(delivery.event_id),
                            attempt=attempt + 1, reason=str(exc)[:300])
                await asyncio.sleep(delay)
        else:
            # Counted by the quorum queue's x-delivery-limit; past it, the broker dead-letters.
            await msg.reject(requeue=True)
            return
        self.metrics.handled.labels(spec.name, result.outcome.value).inc()
        if result.outcome is Outcome.DEAD:
            await self._dead_letter(spec, msg, result.reason, log_it=False)
            return
        await msg.ack()

    async def _dead_letter(self, spec: ConsumerSpec, msg: Any, reason: str, *, log_it: bool = True) -> None:
        raw = msg.raw_message
        if log_it:
            log.error("message_dead_lettered", service=self.service, consumer=spec.name,
                      message_id=raw.message_id, reason=reason)
        headers = dict(raw.headers or {})
        headers.update({"x-lookback-reason": reason[:1000], "x-lookback-consumer": spec.name})
        try:
            await asyncio.wait_for(self.broker.publish(
                raw.body, exchange=topology.dead_letter_exchange(self.names, self.service),
                headers=headers, message_id=raw.message_id, persist=True,
                content_type=raw.content_type), self.publish_timeout)
        except Exception as exc:  # the DLQ is unreachable: keep the message, try again later
            log.warning("dead_letter_failed", consumer=spec.name, reason=str(exc)[:300])
            await msg.reject(requeue=True)
            return
        self.metrics.dead_lettered.labels(spec.name).inc()
        await msg.ack()

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, message: Outgoing) -> None:
        """Publish persistently; returns only after the broker confirmed (or raises).

        The relay's hot path goes straight to the aio-pika exchange on FastStream's default
        channel (publisher confirms, `on_return_raises`): FastStream's own publish path costs
        ~25 % of throughput (reference/perf-baselines.md, rows c and d). The publisher objects
        above still document every event type in AsyncAPI.
        """
        if self._exchange_obj is None:
            raise TransientError("transport not started")
        amqp_message = aio_pika.Message(
            message.body, headers=message.headers, message_id=message.event_id,
            content_type="application/json", type=message.event_type,
            correlation_id=message.correlation_id, app_id=self.service,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        # aio-pika waits for a reconnect without a timeout (bus-anchors P7): bound it here.
        await asyncio.wait_for(self._exchange_obj.publish(
            amqp_message, routing_key=message.event_type, mandatory=True,
            timeout=self.publish_timeout), self.publish_timeout)

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.connect()
        names, service = self.names, self.service
        dlx = await self.broker.declare_exchange(topology.dead_letter_exchange(names, service))
        dlq = await self.broker.declare_queue(topology.dead_letter_queue(names, service))
        await dlq.bind(dlx)
        own = self._exchange_obj = await self.broker.declare_exchange(self._exchange)
        archive = await self.broker.declare_queue(topology.archive_queue(names, service))
        await archive.bind(own, routing_key="#")
        await topology.declare_consumer_queues(
            self.broker, names, [(service, spec) for spec, _ in self._consumers])
        await self.broker.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self.broker.stop()

    async def ready(self) -> tuple[bool, str]:
        if not self._started:
            return False, "transport not started"
        if not await self.broker.ping(timeout=2.0):
            return False, "broker not connected"
        for spec, subscriber in self._consumers:
            if getattr(subscriber, "_consumer_tag", None) is None:
                return False, f"consumer {spec.name} not attached"
        return True, "ok"


class LedgerWaker:
    """Wakes ledger readers when the sequencer announces new positions (NOTIFY es_ledger).

    Only a hint: a lost notification costs one poll interval, never an event.
    """

    CHANNEL = "es_ledger"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None
        self._waiters: set[asyncio.Event] = set()

    async def start(self) -> None:
        try:
            conn = await self.pool.acquire()
        except Exception as exc:  # polling still works
            log.warning("ledger_waker_unavailable", reason=str(exc)[:200])
            return
        try:
            await conn.add_listener(self.CHANNEL, self._notified)
        except Exception as exc:  # polling still works; the connection goes back to the pool
            log.warning("ledger_waker_unavailable", reason=str(exc)[:200])
            await self.pool.release(conn)
            return
        self._conn = conn

    def _notified(self, *_: Any) -> None:
        for waiter in self._waiters:
            waiter.set()

    def waiter(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    async def stop(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.remove_listener(self.CHANNEL, self._notified)
                await self.pool.release(self._conn)
            except Exception:
                pass
            self._conn = None


async def idle(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Wait until stopped, woken, or `seconds` passed."""
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        if wake is not None:
            wake.clear()


class LocalTransport:
    """The embedded mode's bus: consumers read the sequenced ledger, no broker needed."""

    def __init__(self, *, service: str, pool: asyncpg.Pool, runtime: ConsumerRuntime[Any],
                 metrics: Metrics, clock: Clock = utc_now, poll_interval: float = 0.05,
                 batch: int = 200, waker: LedgerWaker | None = None) -> None:
        self.service, self.pool, self.runtime, self.metrics = service, pool, runtime, metrics
        self.store = runtime.store
        self.waker = waker
        self.clock, self.poll_interval, self.batch = clock, poll_interval, batch
        self._consumers: list[ConsumerSpec] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    def add_consumer(self, spec: ConsumerSpec) -> None:
        self._consumers.append(spec)

    async def publish(self, message: Outgoing) -> None:  # pragma: no cover - nothing to relay
        raise RuntimeError("the local transport has no relay: consumers read the ledger")

    async def start(self) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._run(spec), name=f"local:{spec.name}")
                       for spec in self._consumers]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 30)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        self._tasks = []

    async def ready(self) -> tuple[bool, str]:
        for task in self._tasks:
            if task.done():
                return False, f"local consumer {task.get_name()} stopped"
        return True, "ok"

    async def _run(self, spec: ConsumerSpec) -> None:
        backoff = self.poll_interval
        wake = self.waker.waiter() if self.waker is not None else None
        while not self._stop.is_set():
            try:
                moved = await self.run_once(spec)
                backoff = self.poll_interval
            except Exception as exc:  # database away: wait and try again, never skip
                log.warning("local_consumer_retry", consumer=spec.name, reason=str(exc)[:300])
                self.metrics.failed.labels(spec.name).inc()
                moved = 0
                backoff = min(backoff * 2 or 0.1, 5.0)
            if not moved:
                await idle(self._stop, wake, backoff)

    async def run_once(self, spec: ConsumerSpec) -> int:
        """Handle what is sequenced after this consumer's position; return how many it passed."""
        name = f"local:{spec.name}"
        position = await get_position(self.pool, name)
        events = await self.store.read_all(position, self.batch, spec.categories)
        wanted = set(spec.event_types)
        for event in events:
            delivery = Delivery.from_recorded(event, source=spec.producer)
            async with self.pool.acquire() as conn, conn.transaction():
                result = Result(Outcome.DUPLICATE)
                if event.event_type in wanted:
                    result = await handle_in_transaction(conn, spec, delivery, runtime=self.runtime,
                                                         now=self.clock())
                    if result.outcome is Outcome.DEAD:
                        await conn.execute(
                            "INSERT INTO es.dead_letters (consumer, event_id, event_type, "
                            "global_position, reason) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                            spec.name, event.event_id, event.event_type, event.global_position,
                            result.reason)
                        self.metrics.dead_lettered.labels(spec.name).inc()
                if event.global_position is None:  # read_all gives every event its position
                    raise RuntimeError(f"{event.event_id} came from the ledger without a position")
                if not await advance_position(conn, name, position, event.global_position):
                    raise TransientError(f"position {name} moved under us")
            position = event.global_position
            if event.event_type in wanted:
                self.metrics.handled.labels(spec.name, result.outcome.value).inc()
                log_outcome(self.service, spec.name, delivery, result)
        return len(events)


class Relay:
    """Publishes a service's sequenced events in global order; advances only after confirms."""

    def __init__(self, *, service: str, categories: Sequence[str], pool: asyncpg.Pool,
                 publish: Callable[[Outgoing], Awaitable[None]], metrics: Metrics,
                 batch: int = 200, poll_interval: float = 0.05,
                 waker: LedgerWaker | None = None) -> None:
        self.service, self.pool, self.publish = service, pool, publish
        self.categories = list(categories)
        self.waker = waker
        self.metrics, self.batch, self.poll_interval = metrics, batch, poll_interval
        self.name = f"relay:{service}"
        self._stop = asyncio.Event()

    async def run_once(self) -> int:
        position = await get_position(self.pool, self.name)
        # The payload goes out as jsonb's own text: valid JSON, and no decode/encode on this path.
        rows = await self.pool.fetch(
            """SELECT l.global_position, e.event_id::text AS event_id, e.event_type,
                      e.schema_version, e.stream_id, e.stream_version, e.payload::text AS body,
                      e.metadata->>'occurred_at' AS time, e.metadata->>'correlation_id' AS corr,
                      e.metadata->>'causation_id' AS cause
                 FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
                WHERE l.global_position > $1 AND e.category = ANY($2::text[])
                ORDER BY l.global_position LIMIT $3""",
            position, self.categories, self.batch)
        if not rows:
            self.metrics.relay_lag.set(0)
            return 0
        messages = [Outgoing(r["event_id"], r["event_type"], cloud_event_headers(
            event_id=r["event_id"], source=self.service, event_type=r["event_type"],
            stream_id=r["stream_id"], schema_version=r["schema_version"],
            stream_version=r["stream_version"], global_position=r["global_position"],
            time=r["time"], correlation_id=r["corr"], causation_id=r["cause"]),
            r["body"].encode(), r["corr"] or r["event_id"]) for r in rows]
        # Pipelined: all confirms of the batch are awaited together; any failure means the whole
        # batch is published again later (consumers deduplicate by event id).
        await asyncio.gather(*(self.publish(m) for m in messages))
        await advance_position(self.pool, self.name, position, rows[-1]["global_position"])
        self.metrics.relay_published.inc(len(rows))
        return len(rows)

    async def lag(self) -> int:
        position = await get_position(self.pool, self.name)
        behind: int = await self.pool.fetchval(
            "SELECT count(*) FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id "
            "WHERE l.global_position > $1 AND e.category = ANY($2::text[])",
            position, self.categories)
        return behind

    async def run(self) -> None:
        self._stop.clear()
        backoff = self.poll_interval
        wake = self.waker.waiter() if self.waker is not None else None
        while not self._stop.is_set():
            try:
                sent = await self.run_once()
                backoff = self.poll_interval
            except Exception as exc:  # broker or database away: retry the same batch, skip nothing
                log.warning("relay_retry", service=self.service, reason=str(exc)[:300])
                sent = 0
                backoff = min(max(backoff * 2, 0.1), 5.0)
            if not sent:
                await idle(self._stop, wake, backoff)

    def stop(self) -> None:
        self._stop.set()
