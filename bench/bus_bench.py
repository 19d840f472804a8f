"""Bus benchmark: our relay against raw aio-pika in the same run, and end-to-end latency.

    .venv/bin/python -m bench.bus_bench [--events 5000] [--latency-events 2000] [--rate 200]

1. raw: aio-pika publishes persistent messages with confirms, 100 outstanding, to the same exchange
   and queues our relay publishes to (the baseline);
2. relay: our Relay publishes the same number of sequenced events from the ledger (read, envelope,
   publish with confirms, advance the position) — target >= 0.7x raw;
3. end to end: service A appends one event at a time at --rate events/s; the sequencer, the relay
   and service B's consumer (inbox + read-model row, one transaction) run as in production;
   latency = append start -> B's row committed. Target: p99 < 100 ms at 200 events/s.
Needs PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672. Creates and drops its own
database and bus names.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import asyncpg

from services.system import migration_folders as all_migration_folders
from shared.consuming import ConsumerRuntime, ConsumerSpec, HandlerContext
from shared.messages import SYSTEM_ACTOR, new_event
from shared.metrics import Metrics
from shared.migrations import migrate
from shared.sequencer import Sequencer
from shared.store import PostgresEventStore, create_pool
from shared.topology import Names
from shared.transport import LedgerWaker, RabbitTransport, Relay
from tests.conftest import EXAMPLE_SQL
from tests.example_services import CONTRACT, SEEN_TABLE, ThingRegistered

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def thing(i: int) -> ThingRegistered:
    return ThingRegistered(thing_id=f"t{i}", name=f"示例设施{i:05d}（用于基准测试的一段较长名称）",
                           unit="echeng")


async def make_database() -> tuple[str, str]:
    name = f"lookback_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = ADMIN.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(dsn)
    await migrate(conn, *all_migration_folders(), EXAMPLE_SQL)
    await conn.execute(SEEN_TABLE)
    await conn.close()
    return name, dsn


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def raw_publish(exchange_name: str, bodies: list[tuple[bytes, dict]], window: int = 100) -> float:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(exchange_name)
        gate = asyncio.Semaphore(window)

        async def one(body: bytes, headers: dict) -> None:
            async with gate:
                await exchange.publish(aio_pika.Message(body, headers=headers, delivery_mode=2,
                                                        message_id=headers["ce-id"],
                                                        content_type="application/json"),
                                       routing_key="example.ThingRegistered", mandatory=True)

        start = time.perf_counter()
        await asyncio.gather(*(one(b, h) for b, h in bodies))
        return len(bodies) / (time.perf_counter() - start)


async def append_many(store: PostgresEventStore, n: int) -> None:
    now = datetime.now(UTC)
    for start in range(0, n, 100):
        batch = [new_event(f"example-{uuid.uuid4()}", thing(i), actor=SYSTEM_ACTOR, occurred_at=now)
                 for i in range(start, min(n, start + 100))]
        await store.append(batch)


async def purge(names: Names) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        for q in ("example.events.archive", "example.dlq", "exampleconsumer.on-example",
                  "exampleconsumer.dlq", "exampleconsumer.events.archive"):
            await channel.queue_delete(names.queue(q))
        for x in ("example.events", "example.dlx", "exampleconsumer.events", "exampleconsumer.dlx"):
            await channel.exchange_delete(names.queue(x))


async def relay_throughput(dsn: str, names: Names, n: int) -> tuple[float, float]:
    pool = await create_pool(dsn, role="lookback_example", max_size=8)
    store = PostgresEventStore(pool)
    await append_many(store, n)
    sequencer = Sequencer(dsn, batch_size=5000)
    while await sequencer.run_once():
        pass
    await sequencer.close()
    metrics = Metrics("example")
    transport = RabbitTransport(service="example", amqp_url=AMQP, names=names, pool=pool,
                                runtime=ConsumerRuntime("example", store, None),
                                metrics=metrics)
    await transport.start()
    # the same payloads, for the raw baseline, through the same exchange and queues
    from shared.envelope import Delivery
    events = []
    position = 0
    while page := await store.read_all(position, 1000):
        events.extend(page)
        position = page[-1].global_position
    bodies = [(d.amqp_body(), d.amqp_headers())
              for d in (Delivery.from_recorded(e, "example") for e in events)]
    raw = await raw_publish(names.events_exchange("example"), bodies)
    relay = Relay(service="example", categories=CONTRACT.categories, pool=pool,
                  publish=transport.publish, metrics=metrics, batch=500)
    start = time.perf_counter()
    while await relay.run_once():
        pass
    ours = n / (time.perf_counter() - start)
    await transport.stop()
    await pool.close()
    return raw, ours


async def end_to_end(dsn: str, names: Names, n: int, rate: float) -> list[float]:
    producer_pool = await create_pool(dsn, role="lookback_example", max_size=4)
    consumer_pool = await create_pool(dsn, role="lookback_exampleconsumer", max_size=8)
    store = PostgresEventStore(producer_pool)
    metrics = Metrics("example")
    producer = RabbitTransport(service="example", amqp_url=AMQP, names=names, pool=producer_pool,
                               runtime=ConsumerRuntime("example", store, None), metrics=metrics)

    async def record(ctx: HandlerContext, event: ThingRegistered) -> None:
        await ctx.conn.execute(
            "INSERT INTO public.example_seen (event_id, thing_id, name) VALUES ($1, $2, $3)",
            ctx.delivery.event_id, event.thing_id, event.name)

    consumer = RabbitTransport(service="exampleconsumer", amqp_url=AMQP, names=names,
                               pool=consumer_pool,
                               runtime=ConsumerRuntime("exampleconsumer",
                                                       PostgresEventStore(consumer_pool), None),
                               metrics=Metrics("exampleconsumer"))
    consumer.add_consumer(ConsumerSpec(name="exampleconsumer.on-example", source=CONTRACT,
                                       reactions={ThingRegistered: record}))
    await producer.start()
    await consumer.start()
    # Already-sequenced events from the throughput phase must not count here.
    relay_pos = await producer_pool.fetchval("SELECT max(global_position) FROM es.ledger") or 0
    await producer_pool.execute(
        "INSERT INTO es.positions (name, global_position) VALUES ('relay:example', $1) "
        "ON CONFLICT (name) DO UPDATE SET global_position = EXCLUDED.global_position", relay_pos)
    waker = LedgerWaker(producer_pool)
    await waker.start()
    relay = Relay(service="example", categories=CONTRACT.categories, pool=producer_pool,
                  publish=producer.publish, metrics=metrics, waker=waker, poll_interval=0.1)
    stop = asyncio.Event()
    sequencer = Sequencer(dsn, poll_interval=0.02)
    tasks = [asyncio.create_task(sequencer.run(stop)), asyncio.create_task(relay.run())]
    started: dict[str, float] = {}
    now = datetime.now(UTC)
    interval = 1.0 / rate
    t_next = time.perf_counter()
    for i in range(n):
        thing_id = f"e2e-{i}"
        event = ThingRegistered(thing_id=thing_id, name=f"e2e {i}", unit="echeng")
        started[thing_id] = time.time()
        await store.append([new_event(f"example-{uuid.uuid4()}", event, actor=SYSTEM_ACTOR, occurred_at=now)])
        t_next += interval
        await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = await consumer_pool.fetchval(
            "SELECT count(*) FROM public.example_seen WHERE thing_id LIKE 'e2e-%'")
        if count >= n:
            break
        await asyncio.sleep(0.1)
    rows = await consumer_pool.fetch(
        "SELECT s.thing_id, extract(epoch FROM i.handled_at)::float8 AS at FROM public.example_seen s "
        "JOIN es.inbox i ON i.event_id = s.event_id AND i.consumer = 'exampleconsumer.on-example' "
        "WHERE s.thing_id LIKE 'e2e-%'")
    stop.set()
    relay.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    await waker.stop()
    await consumer.stop()
    await producer.stop()
    await producer_pool.close()
    await consumer_pool.close()
    return [(r["at"] - started[r["thing_id"]]) * 1000 for r in rows]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--latency-events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    name, dsn = await make_database()
    names = Names(f"bench{uuid.uuid4().hex[:6]}.")
    try:
        raw, ours = await relay_throughput(dsn, names, args.events)
        latencies = await end_to_end(dsn, names, args.latency_events, args.rate)
    finally:
        await purge(names)
        await drop_database(name)
    print(f"{'case':58} {'value':>12} {'ratio':>7} target")
    print(f"{'raw aio-pika publish, confirms, 100 outstanding':58} {raw:>9,.0f}/s {'1.00':>7}")
    ratio = ours / raw
    print(f"{'our relay: ledger -> publish with confirms -> position':58} {ours:>9,.0f}/s "
          f"{ratio:>7.2f} >= 0.70 {'OK' if ratio >= 0.7 else 'MISSED'}")
    if latencies:
        p50, p99 = statistics.median(latencies), pct(latencies, 99)
        print(f"{f'end to end at {args.rate:.0f}/s over {len(latencies)} events: p50':58} {p50:>9.1f} ms")
        print(f"{'end to end: p99':58} {p99:>9.1f} ms {'':>7} < 100 ms {'OK' if p99 < 100 else 'MISSED'}")
        print(f"{'end to end: max':58} {max(latencies):>9.1f} ms")
    print(json.dumps({"raw_per_s": round(raw), "relay_per_s": round(ours), "relay_ratio": round(ratio, 3),
                      "e2e_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
                      "e2e_p99_ms": round(pct(latencies, 99), 1) if latencies else None,
                      "e2e_count": len(latencies)}))


if __name__ == "__main__":
    asyncio.run(main())
