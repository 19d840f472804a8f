"""Two transports with the same delivery semantics, so the same handler code runs in both.

- RabbitTransport: FastStream 0.7 over aio-pika; the relay publishes sequenced events with
  confirms, consumers ack only after their transaction committed.
- LocalTransport (embedded mode, and every service's projections): each consumer tails the
  sequenced ledger directly, handling a group of events and advancing its position in one
  transaction. At-least-once in, exactly-once effects.

It stays one module past 400 lines on purpose: the two transports and the relay must keep the same
delivery semantics (classification, retries, positions), and reading them side by side is how a
change to one is checked against the others.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared import topology
from shared.canonical import CanonicalJsonError, canonical_json, sha256
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
from shared.envelope import CE, Delivery, Outgoing, cloud_event_headers, source_uri
from shared.errors import TransientError
from shared.logging import get_logger
from shared.metrics import Metrics
from shared.positions import advance_position, get_position
from shared.store import PostgresEventStore

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = get_logger()

# Transient failures (a version conflict, the database away, a handler bug) are retried in process
# after these pauses (each jittered down to half, so racers spread out), while the message is held;
# only then does it go back to the broker, whose quorum queue counts the delivery toward its limit
# and dead-letters past it. Poison (unparseable, unknown, invalid) goes to the DLQ at once.
RETRY_DELAYS = (0.1, 0.3, 1.0, 3.0)

# The producer's own record of an event: a delivery is acted on only if it matches it.
_LEDGER_ENTRY = ("SELECT l.stream_id, l.event_type, l.payload_hash FROM es.ledger l "
                 "WHERE l.event_id = $1")
# Whether the consumer has yet to handle the stream's nearest earlier event it takes (the one
# before that was handled before it, and so on): one step down the (stream_id, stream_version)
# index, and one inbox row.
_EARLIER_UNHANDLED = """
    SELECT NOT EXISTS (SELECT 1 FROM es.inbox i WHERE i.consumer = $4 AND i.event_id = p.event_id)
      FROM (SELECT l.event_id FROM es.ledger l
             WHERE l.stream_id = $1 AND l.stream_version < $2 AND l.event_type = ANY($3::text[])
             ORDER BY l.stream_version DESC LIMIT 1) p"""
# How long a delivery waits for its stream's earlier event before it is handled anyway: the
# earlier one may have been dead-lettered, and a consumer must not stall behind it for ever.
ORDER_WAIT_SECONDS = 10.0


async def _undecoded(message: Any) -> bytes:
    """The body as it came: `accept` parses it. FastStream's own decoder would parse a body
    labelled JSON before any handler runs, and a body that is not JSON would then never reach
    one, so it could not be dead-lettered with its reason."""
    return bytes(message.body)


class Poison(Exception):
    """A delivery no retry can help: it goes to the dead-letter queue with this reason."""


class RabbitTransport:
    """Consumers over FastStream with bounded work, and the relay's publishing path.

    Bounded: each consumer has its own channel with a prefetch limit (the broker hands over at
    most `prefetch` unacknowledged messages) and runs at most `concurrency` handlers at once. A
    backlog waits in the broker, not in this process. In order per stream: a delivery is handled
    only once the consumer has handled the stream's earlier events (`_in_turn`, ADR 0019).
    Stopping cancels the consumers at the broker first (no new work), lets the handlers finish
    within the graceful timeout, and cancels what is left; its messages, never acknowledged, go
    back to the queue.
    """

    def __init__(self, *, service: str, amqp_url: str, names: topology.Names, pool: asyncpg.Pool,
                 runtime: ConsumerRuntime[Any], metrics: Metrics,
                 clock: Clock = utc_now,
                 publish_timeout: float = 10.0, graceful_timeout: float = 30.0, prefetch: int = 8,
                 concurrency: int = 4, retry_delays: Sequence[float] = RETRY_DELAYS,
                 publishers: Callable[[str], frozenset[str]] | None = None) -> None:
        self.retry_delays = tuple(retry_delays)
        self.service, self.names, self.pool, self.runtime = service, names, pool, runtime
        # The broker user this process logs in as: stamped on what it publishes (RabbitMQ
        # refuses a `user_id` other than the connection's), and the producer of a delivery must
        # have stamped its own (`publishers(producer)` names the users allowed per producer).
        self.username = unquote(urlsplit(amqp_url).username or "guest")
        self.publishers = publishers or (lambda producer: frozenset({producer}))
        self.metrics, self.clock = metrics, clock
        self.publish_timeout, self.graceful_timeout = publish_timeout, graceful_timeout
        self.prefetch, self.concurrency = prefetch, min(concurrency, prefetch)
        self.broker = RabbitBroker(
            amqp_url,
            # Unroutable publishes must fail, not be silently "returned" (bus-anchors P3).
            default_channel=Channel(publisher_confirms=True, on_return_raises=True),
            graceful_timeout=graceful_timeout, app_id=service, logger=None,
        )
        self._exchange = topology.events_exchange(names, service)
        self._consumers: list[tuple[ConsumerSpec, Any]] = []
        self._channels: dict[str, Channel] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._accepting = False
        self._closing = asyncio.Event()
        self._started = False
        self._exchange_obj: Any = None
        # The highest global position each consumer handled (its lag is measured from here).
        self.positions: dict[str, int] = {}

    # -- consuming ---------------------------------------------------------------------------
    def add_consumer(self, spec: ConsumerSpec) -> None:
        queue = topology.consumer_queue(self.names, spec.name, self.service, spec.event_types[0])
        exchange = topology.events_exchange(self.names, spec.producer, declare=False)
        # A channel of its own per consumer: the prefetch limit is per channel, and FastStream
        # consumes on the channel the queue was first declared on (see `start`).
        channel = self._channels[spec.name] = Channel(prefetch_count=self.prefetch)
        self._slots[spec.name] = asyncio.Semaphore(self.concurrency)

        async def on_message(msg: RabbitMessage) -> None:
            await self._on_message(spec, msg)

        on_message.__name__ = f"on_{spec.name.replace('.', '_').replace('-', '_')}"
        subscriber = self.broker.subscriber(
            queue, exchange, channel=channel, ack_policy=AckPolicy.MANUAL, no_reply=True,
            decoder=_undecoded)
        subscriber(on_message)
        self._consumers.append((spec, subscriber))

    async def _on_message(self, spec: ConsumerSpec, msg: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            if self._accepting:
                await self._in_turn(spec, msg)
                async with self._slots[spec.name]:
                    if self._accepting:
                        await self._deliver(spec, msg)
                        return
            await self._give_back(spec, msg, "stopping")
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _in_turn(self, spec: ConsumerSpec, msg: Any) -> None:
        """Wait, without holding a handler slot, until this consumer has handled the earlier
        events of the delivery's stream that it takes. Handlers run several at once and FastStream
        does not hand deliveries over strictly in their order, yet a reaction to a subject's later
        event must not overtake the one to an earlier event: a 反弹 taking back a 销号 the other
        service has not recorded yet would change nothing, and the 销号 would land after it. The
        inbox is the truth, so this holds across redeliveries and processes too. A delivery
        whose headers do not say its place is left to `accept` (which dead-letters it)."""
        headers = msg.raw_message.headers or {}
        stream = headers.get(f"{CE}subject")
        try:   # a string on the wire (CloudEvents extensions), an integer in the older form
            version = int(str(headers.get(f"{CE}streamversion")))
        except ValueError:
            return
        if not isinstance(stream, str) or version <= 1:
            return
        loop = asyncio.get_running_loop()
        give_up, pause = loop.time() + ORDER_WAIT_SECONDS, 0.01
        while not self._closing.is_set():
            try:
                waiting = await self.pool.fetchval(_EARLIER_UNHANDLED, stream, version,
                                                   list(spec.event_types), spec.name)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return   # the store is away: `accept` finds out and gives the message back
            if not waiting:
                return
            if loop.time() > give_up:
                log.warning("message_out_of_order", consumer=spec.name, stream_version=version,
                            reason=f"an earlier event of its stream is still not handled after "
                                   f"{ORDER_WAIT_SECONDS:.0f} s (dead-lettered?)")
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def accept(self, spec: ConsumerSpec, msg: Any) -> Delivery:
        """The one place a delivery is checked before any handling (docs/adr/0009):

        1. the envelope parses (CloudEvents attributes, a JSON object body), and its `ce-source`
           names the producer whose queue it came in on (in either form, docs/adr/0016);
        2. the broker user who published it is its producer's (RabbitMQ guarantees a message's
           `user_id` is its publisher's login): a message another user published is forged;
        3. the store is the truth, the message only a notification: the event is in the
           producer's signed ledger, in one of the producer's stream categories, with this type
           and this payload (its hash), so even a broker administrator cannot forge one.

        Raises Poison when no retry can make it acceptable; TransientError when the store is away.
        """
        raw = msg.raw_message
        try:
            delivery = Delivery.from_amqp(raw.body, raw.headers, raw.message_id)
        except ValueError as exc:
            raise Poison(str(exc)) from exc
        if delivery.producer != spec.producer:
            raise Poison(f"ce-source {delivery.source!r} names {delivery.producer}, not "
                         f"{spec.producer}: refused as forged")
        publisher = raw.user_id or "(nobody)"
        if publisher not in self.publishers(spec.producer):
            raise Poison(f"published by broker user {publisher!r}, not by {spec.producer}'s: "
                         "refused as forged")
        try:
            entry = await self.pool.fetchrow(_LEDGER_ENTRY, delivery.event_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise TransientError(f"database unavailable: {str(exc)[:200]}") from exc
        if entry is None:
            raise Poison(f"event {delivery.event_id} is not in the signed ledger: refused as forged")
        category = entry["stream_id"].split("-", 1)[0]
        if category not in spec.categories or entry["event_type"] != delivery.event_type:
            raise Poison(f"event {delivery.event_id} is a {entry['event_type']} of "
                         f"{entry['stream_id']} in the ledger, not {spec.producer}'s "
                         f"{delivery.event_type}: refused as forged")
        try:
            payload_hash = sha256(canonical_json(delivery.payload))
        except CanonicalJsonError as exc:
            raise Poison(f"event {delivery.event_id}'s payload has no canonical form: {exc}") from exc
        if bytes(entry["payload_hash"]) != payload_hash:
            raise Poison(f"event {delivery.event_id}'s payload differs from the signed ledger's: "
                         "refused as forged")
        return delivery

    async def _deliver(self, spec: ConsumerSpec, msg: Any) -> None:
        try:
            delivery = await self.accept(spec, msg)
        except Poison as exc:
            await self._dead_letter(spec, msg, str(exc))
            return
        except TransientError as exc:
            log.warning("message_retry", consumer=spec.name, reason=str(exc)[:300])
            await self._give_back(spec, msg, "store_unavailable")
            return

        def timed(seconds: float) -> None:
            self.metrics.observe_transaction(spec.name, seconds)

        for attempt in range(len(self.retry_delays) + 1):
            try:
                result = await handle(self.pool, spec, delivery, runtime=self.runtime,
                                      clock=self.clock, on_transaction=timed)
                break
            except TransientError as exc:
                self.metrics.failed.labels(spec.name).inc()
                log.warning("message_retry", consumer=spec.name, event_id=str(delivery.event_id),
                            attempt=attempt + 1, reason=str(exc)[:300])
                if attempt == len(self.retry_delays) or not await self._pause(
                        self.retry_delays[attempt]):
                    # Counted by the quorum queue's x-delivery-limit; past it, the broker
                    # dead-letters. A stop in the middle gives it back without counting further.
                    await self._give_back(spec, msg, "stopping" if self._closing.is_set()
                                          else "retries_spent")
                    return
        self.metrics.handled.labels(spec.name, result.outcome.value).inc()
        if delivery.global_position is not None:
            self.positions[spec.name] = max(self.positions.get(spec.name, 0),
                                            delivery.global_position)
        if result.outcome is Outcome.DEAD:
            await self._dead_letter(spec, msg, result.reason, log_it=False)
            return
        await msg.ack()

    async def _pause(self, seconds: float) -> bool:
        """Sleep before a retry (jittered); False if the transport began stopping meanwhile."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds * random.uniform(0.5, 1.0))
        except TimeoutError:
            return True
        return False

    async def _give_back(self, spec: ConsumerSpec, msg: Any, reason: str) -> None:
        self.metrics.requeued.labels(spec.name, reason).inc()
        try:
            await msg.reject(requeue=True)
        except Exception as exc:  # the channel is gone: the broker requeues it by itself
            log.warning("message_give_back_failed", consumer=spec.name, reason=str(exc)[:200])

    async def _dead_letter(self, spec: ConsumerSpec, msg: Any, reason: str, *, log_it: bool = True) -> None:
        raw = msg.raw_message
        if log_it:
            log.error("message_dead_lettered", service=self.service, consumer=spec.name,
                      message_id=raw.message_id, reason=reason)
        headers = dict(raw.headers or {})
        headers.update({"x-lookback-reason": reason[:1000], "x-lookback-consumer": spec.name,
                        "x-lookback-published-by": str(raw.user_id or "(nobody)")[:200]})
        try:
            await asyncio.wait_for(self.broker.publish(
                raw.body, exchange=topology.dead_letter_exchange(self.names, self.service),
                headers=headers, message_id=raw.message_id, persist=True,
                content_type=raw.content_type), self.publish_timeout)
        except Exception as exc:  # the DLQ is unreachable: keep the message, try again later
            log.warning("dead_letter_failed", consumer=spec.name, reason=str(exc)[:300])
            await self._give_back(spec, msg, "dead_letter_failed")
            return
        self.metrics.dead_lettered.labels(spec.name).inc()
        await msg.ack()

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, message: Outgoing) -> None:
        """Publish persistently; returns only after the broker confirmed (or raises).

        The relay's hot path goes straight to the aio-pika exchange on FastStream's default
        channel (publisher confirms, `on_return_raises`): FastStream's own publish path costs
        ~25 % of throughput (reference/perf-baselines.md, rows c and d). What it publishes is
        described by the service's AsyncAPI document (shared/asyncapi.py).
        """
        if self._exchange_obj is None:
            raise TransientError("transport not started")
        amqp_message = aio_pika.Message(
            message.body, headers=message.headers, message_id=message.event_id,
            content_type="application/json", type=message.event_type,
            correlation_id=message.correlation_id, app_id=self.service, user_id=self.username,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        # aio-pika waits for a reconnect without a timeout (bus-anchors P7): bound it here.
        await asyncio.wait_for(self._exchange_obj.publish(
            amqp_message, routing_key=message.event_type, mandatory=True,
            timeout=self.publish_timeout), self.publish_timeout)

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._closing.clear()
        await self.broker.connect()
        names, service = self.names, self.service
        dlx = await self.broker.declare_exchange(topology.dead_letter_exchange(names, service))
        dlq = await self.broker.declare_queue(topology.dead_letter_queue(names, service))
        await dlq.bind(dlx)
        own = self._exchange_obj = await self.broker.declare_exchange(self._exchange)
        archive = await self.broker.declare_queue(topology.archive_queue(names, service))
        await archive.bind(own, routing_key="#")
        # Each consumer's queue is declared on that consumer's own channel: FastStream caches
        # a declared queue with its channel and consumes there, so a queue declared first on
        # the default channel (which has no prefetch limit) would be consumed without one.
        await topology.declare_consumer_queues(
            self.broker, names, [(service, spec) for spec, _ in self._consumers],
            channels=self._channels)
        self._accepting = True
        await self.broker.start()
        self._started = True

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking work, finish or give back what is held within `timeout`, then close."""
        budget = self.graceful_timeout if timeout is None else max(timeout, 0.0)
        self._accepting = False
        self._closing.set()
        self._started = False
        for spec, subscriber in self._consumers:  # 1. no new deliveries
            queue, tag = getattr(subscriber, "_queue_obj", None), getattr(subscriber, "_consumer_tag", None)
            if queue is None or tag is None:
                continue
            try:
                await asyncio.wait_for(queue.cancel(tag), 2.0)
            except Exception as exc:  # a lost channel delivers nothing more anyway
                log.warning("consumer_cancel_failed", consumer=spec.name, reason=str(exc)[:200])
            subscriber._consumer_tag = None
        in_flight = set(self._in_flight)          # 2. finish what is held, within the budget
        if in_flight:
            _, pending = await asyncio.wait(in_flight, timeout=budget)
            if pending:
                log.warning("shutdown_abandoned_messages", service=self.service, count=len(pending))
                for task in pending:  # rolled back; unacknowledged, so the broker requeues them
                    task.cancel()
                await asyncio.wait(pending, timeout=2.0)
        try:                                      # 3. close (returns anything still unacked)
            await asyncio.wait_for(self.broker.stop(), 5.0)
        except Exception as exc:
            log.warning("broker_stop_failed", service=self.service, reason=str(exc)[:200])

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
            except Exception as exc:  # stopping: the connection may already be gone with its server
                log.info("ledger_waker_release_failed", reason=str(exc)[:200])
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


class _Timed:
    """How long the block inside it took (a transaction, from BEGIN to COMMIT)."""

    seconds = 0.0

    async def __aenter__(self) -> _Timed:
        self._began = time.perf_counter()
        return self

    async def __aexit__(self, *_: Any) -> None:
        self.seconds = time.perf_counter() - self._began


class LocalTransport:
    """The embedded mode's bus: consumers read the sequenced ledger, no broker needed."""

    def __init__(self, *, service: str, pool: asyncpg.Pool, runtime: ConsumerRuntime[Any],
                 metrics: Metrics, clock: Clock = utc_now, poll_interval: float = 0.05,
                 batch: int = 200, per_transaction: int = 25,
                 waker: LedgerWaker | None = None) -> None:
        self.service, self.pool, self.runtime, self.metrics = service, pool, runtime, metrics
        # Reads go through this transport's own pool, never the read side's (docs/adr/0011).
        self.store = PostgresEventStore(pool)
        self.waker = waker
        self.clock, self.poll_interval, self.batch = clock, poll_interval, batch
        self.per_transaction = per_transaction
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

    async def stop(self, timeout: float = 30.0) -> None:
        """Each loop finishes the event in hand (one short transaction), within `timeout`."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=max(timeout, 0.0))
            for task in pending:  # its transaction rolls back; the position did not move
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        self._tasks = []

    @property
    def consumer_names(self) -> list[str]:
        """The names their positions are kept under in es.positions."""
        return [f"local:{spec.name}" for spec in self._consumers]

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
        """Handle what is sequenced after this consumer's position; return how many it passed.

        Up to `per_transaction` events share one transaction with the position's advance: each
        commit costs a disk flush, and a projection passes every event of its categories (most
        of them not its types). Exactly once all the same: effects, inbox rows and position
        commit together, and a failure rolls back the whole group, to be read again."""
        name = f"local:{spec.name}"
        position = await get_position(self.pool, name)
        events = await self.store.read_all(position, self.batch, spec.categories)
        wanted = set(spec.event_types)
        for start in range(0, len(events), self.per_transaction):
            group = events[start:start + self.per_transaction]
            last = group[-1].global_position
            if last is None:  # read_all gives every event its ledger position
                raise RuntimeError(f"{group[-1].event_id} came from the ledger without a position")
            outcomes: list[tuple[Delivery, Result]] = []
            async with self.pool.acquire() as conn, _Timed() as timed, conn.transaction():
                for event in group:
                    if event.event_type not in wanted:
                        continue
                    delivery = Delivery.from_recorded(event, source=spec.producer)
                    result = await handle_in_transaction(conn, spec, delivery, runtime=self.runtime,
                                                         now=self.clock())
                    if result.outcome is Outcome.DEAD:
                        await conn.execute(
                            "INSERT INTO es.dead_letters (consumer, event_id, event_type, "
                            "global_position, reason) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                            spec.name, event.event_id, event.event_type, event.global_position,
                            result.reason)
                    outcomes.append((delivery, result))
                if not await advance_position(conn, name, position, last):
                    raise TransientError(f"position {name} moved under us")
            self.metrics.observe_transaction(spec.name, timed.seconds)
            position = last
            for delivery, result in outcomes:
                self.metrics.handled.labels(spec.name, result.outcome.value).inc()
                if result.outcome is Outcome.DEAD:
                    self.metrics.dead_lettered.labels(spec.name).inc()
                log_outcome(self.service, spec.name, delivery, result)
        return len(events)


class Relay:
    """Publishes a service's sequenced events in global order; advances only after confirms."""

    def __init__(self, *, service: str, categories: Sequence[str], pool: asyncpg.Pool,
                 publish: Callable[[Outgoing], Awaitable[None]], metrics: Metrics,
                 batch: int = 200, poll_interval: float = 0.05,
                 waker: LedgerWaker | None = None, deployment: str = "default") -> None:
        self.service, self.pool, self.publish = service, pool, publish
        self.source = source_uri(deployment, service)
        self.categories = list(categories)
        self.waker = waker
        self.metrics, self.batch, self.poll_interval = metrics, batch, poll_interval
        self.name = f"relay:{service}"
        self.position: int | None = None  # as last read or advanced by the loop (lag metric)
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
        self.position = position
        if not rows:
            return 0
        messages = [Outgoing(r["event_id"], r["event_type"], cloud_event_headers(
            event_id=r["event_id"], source=self.source, event_type=r["event_type"],
            stream_id=r["stream_id"], schema_version=r["schema_version"],
            stream_version=r["stream_version"], global_position=r["global_position"],
            time=r["time"], correlation_id=r["corr"], causation_id=r["cause"]),
            r["body"].encode(), r["corr"] or r["event_id"]) for r in rows]
        # Pipelined: all confirms of the batch are awaited together; any failure means the whole
        # batch is published again later (consumers deduplicate by event id).
        await asyncio.gather(*(self.publish(m) for m in messages))
        await advance_position(self.pool, self.name, position, rows[-1]["global_position"])
        self.position = rows[-1]["global_position"]
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
