"""Steady under load (issue 17): bounded consumers, loops that keep their connections to
themselves, readiness that tells busy from down, lags measured truthfully, retries that spare the
broker's delivery budget, and a stop that finishes or gives back its work in time."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from contextlib import AsyncExitStack

import aio_pika
import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from shared.messages import new_event
from shared.metrics import Metrics
from shared.service import create_service_app
from shared.settings import Settings
from tests.example_services import EXAMPLE, SEEN_TABLE, Handlers, ThingRegistered, consumer_spec
from tests.shared.test_bus import delete_bus_objects, register, seen, settings_for
from tests.support.actors import city_admin
from tests.support.clock import at
from tests.support.databases import execute, fetchval, store_as
from tests.support.faults import TcpProxy
from tests.support.polling import eventually
from tests.support.services import AMQP_URL, running

pytestmark = pytest.mark.integration

QUEUE = "exampleconsumer.on-example"


async def _seen_table(dsn: str) -> None:
    await execute(dsn, SEEN_TABLE)


def _consumer(dsn: str, prefix: str, **settings):
    return create_service_app(consumer_spec(), settings_for(
        dsn, prefix, AMQP_URL, run_sequencer=False).model_copy(update=settings))


async def _queue_depth(prefix: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(prefix + QUEUE, passive=True)
        return queue.declaration_result.message_count


def _broker_prefetch(queue: str) -> list[int]:
    """The prefetch of every consumer of `queue`, as RabbitMQ itself reports it."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_consumers", "queue_name", "prefetch_count", "--formatter", "json"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    return [row["prefetch_count"] for row in json.loads(listed) if row["queue_name"] == queue]


async def test_each_consumer_has_the_configured_prefetch_on_the_broker(database, unique_prefix):
    await _seen_table(database)
    # `lookback provision` declares every queue of the system first (hosting.declare_bus), then
    # the service declares its own: neither may leave the consumer on a channel without a limit.
    from shared.hosting import declare_bus

    settings = settings_for(database, unique_prefix, AMQP_URL, consumer_prefetch=3)
    await declare_bus(AMQP_URL, settings.bus_prefix, ["example"],
                      [("exampleconsumer", consumer_spec().consumers[0])])
    try:
        async with running(_consumer(database, unique_prefix, consumer_prefetch=3)):
            prefetch = await eventually(
                lambda: asyncio.to_thread(_broker_prefetch, unique_prefix + QUEUE), timeout=30,
                what="the consumer listed by the broker")
            assert prefetch == [3]
    finally:
        await delete_bus_objects(unique_prefix)


async def test_a_backlog_runs_no_more_handlers_at_once_than_configured(database, unique_prefix):
    await _seen_table(database)
    Handlers.reset()
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL))
    consumer = _consumer(database, unique_prefix, consumer_prefetch=4, consumer_concurrency=2)
    try:
        async with running(producer) as p, running(consumer) as c:
            for i in range(8):
                assert (await register(p, f"stuck-{i}")).status_code == 201
            await eventually(lambda: Handlers.running == 2, what="two handlers at work")
            # the other six wait: two held by this process (prefetch 4), four in the broker
            await eventually(lambda: _queue_depth(unique_prefix), timeout=30,
                             what="messages left in the broker")
            assert Handlers.most == 2
            Handlers.release.set()
            await eventually(lambda: _count(c, 8), timeout=30, what="all eight handled")
            assert Handlers.most == 2
    finally:
        Handlers.release.set()
        await delete_bus_objects(unique_prefix)


async def test_events_of_one_stream_are_handled_one_at_a_time_in_their_order(database, unique_prefix):
    """Handlers run concurrently, but never two of one stream: a reaction to a later event of a
    subject (a 反弹) must not overtake the reaction to an earlier one (its 销号)."""
    await _seen_table(database)
    Handlers.reset()
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL))
    consumer = _consumer(database, unique_prefix, consumer_prefetch=4, consumer_concurrency=4)

    def thing(stream: str, name: str):
        return new_event(stream, ThingRegistered(thing_id=f"{stream}/{name}", name=name, unit="echeng"),
                         actor=city_admin(), occurred_at=at(2024, 3, 8))
    try:
        async with running(producer), running(consumer) as c:
            async with store_as(database, "example") as store:
                await store.append([thing("example-one", "stuck-first"),
                                    thing("example-one", "then-second")])
                await store.append([thing("example-two", "another-subject")])
            await eventually(lambda: _names(c, {"another-subject"}), timeout=30,
                             what="the other stream's event handled beside the stuck one")
            await eventually(lambda: Handlers.running == 1, what="the stuck one at work")
            assert sorted(Handlers.started) == ["another-subject", "stuck-first"]
            Handlers.release.set()
            await eventually(lambda: _count(c, 3), timeout=30, what="all three handled")
            one = [name for name in Handlers.started if name != "another-subject"]
            assert one == ["stuck-first", "then-second"]
    finally:
        Handlers.release.set()
        await delete_bus_objects(unique_prefix)


async def _names(client, names: set[str]) -> bool:
    return names <= {row["name"] for row in await seen(client)}


async def _count(client, n: int) -> bool:
    return len(await seen(client)) == n


async def test_a_passing_failure_is_retried_in_process_without_going_back_to_the_broker(
        database, unique_prefix):
    await _seen_table(database)
    Handlers.reset()
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL))
    consumer = _consumer(database, unique_prefix, retry_delays=Settings().retry_delays)
    try:
        async with running(producer) as p, running(consumer) as c:
            thing = (await register(p, "flaky-3")).json()["thing_id"]
            await eventually(lambda: _count(c, 1), timeout=30, what="the flaky thing handled")
            tries = Handlers.attempts[thing]
            assert len(tries) == 4
            assert len(set(tries)) == 1, "every attempt in the one delivery: none went back"
            assert "lookback_messages_requeued_total{" not in (await c.get("/metrics")).text
    finally:
        await delete_bus_objects(unique_prefix)


async def test_stopping_returns_the_work_it_could_not_finish_and_leaves_no_handler_running(
        database, unique_prefix):
    await _seen_table(database)
    Handlers.reset()
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL))
    consumer = _consumer(database, unique_prefix, graceful_timeout=1.5, consumer_prefetch=3,
                         consumer_concurrency=3)
    try:
        async with running(producer) as p:
            async with running(consumer):
                for i in range(6):
                    assert (await register(p, f"stuck-{i}")).status_code == 201
                await eventually(lambda: Handlers.running == 3, what="three handlers stuck")
            # stopped: nothing of it still runs, nothing was half done, every message is back
            assert Handlers.running == 0
            rows = await fetchval(database, "SELECT count(*) FROM public.example_seen")
            assert rows == 0
            assert await eventually(lambda: _depth_is(unique_prefix, 6), timeout=30,
                                    what="all six back in the queue")
            # and a consumer started again finishes them, once each
            Handlers.release.set()
            async with running(_consumer(database, unique_prefix)) as c:
                await eventually(lambda: _count(c, 6), timeout=30, what="six handled after restart")
    finally:
        Handlers.release.set()
        await delete_bus_objects(unique_prefix)


async def _depth_is(prefix: str, n: int) -> bool:
    return await _queue_depth(prefix) == n


async def test_scraping_metrics_while_events_flow_never_costs_the_sequencer_its_lead(
        database, unique_prefix):
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, None))
    with capture_logs() as logs:
        async with running(producer) as p:
            async def scrape() -> None:
                for _ in range(150):
                    assert (await p.get("/metrics")).status_code == 200
                    await asyncio.sleep(0.005)

            async def write() -> None:
                for i in range(30):
                    assert (await register(p, f"thing {i}")).status_code == 201

            await asyncio.gather(scrape(), scrape(), write())
            await eventually(lambda: _all_sequenced(database), what="every event sequenced")
    lost = [line for line in logs if line.get("event") == "sequencer_lost_leadership"]
    assert lost == []
    assert len([line for line in logs if line.get("event") == "sequencer_elected"]) == 1


async def _all_sequenced(dsn: str) -> bool:
    return await fetchval(dsn, "SELECT count(*) FROM es.events") == await fetchval(
        dsn, "SELECT count(*) FROM es.ledger")


async def test_lags_are_absent_until_measured():
    text = generate_latest(Metrics("x").registry).decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not [line for line in samples if "_lag_events" in line or "ledger_head" in line]


async def test_metrics_show_each_consumers_lag_next_to_the_relay_and_sequencer_lag(
        database, unique_prefix):
    await _seen_table(database)
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL,
                                                        metrics_interval=0.1))
    consumer = _consumer(database, unique_prefix, metrics_interval=0.1)
    try:
        async with running(producer) as p, running(consumer) as c:
            await register(p, "one")
            await register(p, "two")
            await eventually(lambda: _count(c, 2), timeout=30)

            async def caught_up() -> bool:
                text = (await c.get("/metrics")).text
                return f'lookback_consumer_lag_events{{consumer="{QUEUE}"}} 0.0' in text

            await eventually(caught_up, timeout=30, what="the consumer's lag at 0")
            await eventually(lambda: _metrics_with(p, "lookback_relay_lag_events 0.0"), timeout=30)
            # a transaction open elsewhere in the cluster holds the sequencer back for a while
            await eventually(lambda: _metrics_with(p, "lookback_sequencer_lag_events 0.0"),
                             timeout=60)
    finally:
        await delete_bus_objects(unique_prefix)


async def _metrics_with(client, line: str) -> str | None:
    text = (await client.get("/metrics")).text
    return text if line in text else None


async def test_readiness_says_busy_not_down_when_every_connection_is_in_use(database, unique_prefix):
    await _seen_table(database)
    consumer = _consumer(database, unique_prefix, db_pool_size=2, consumer_pool_size=1)
    try:
        async with running(consumer) as c, AsyncExitStack() as held:
            runtime = consumer.state.runtime
            for pool, size in ((runtime.pool, 2), (runtime.consumer_pool, 1)):
                for _ in range(size):
                    await held.enter_async_context(pool.acquire())
            response = await c.get("/readyz")
            assert response.status_code == 200, response.text
            assert response.json()["checks"]["database"] == "ok"
            assert response.json()["busy"] is True
            assert response.json()["pools"]["api"] == "2/2"
    finally:
        await delete_bus_objects(unique_prefix)


async def test_readiness_says_down_when_the_database_does_not_answer(database, unique_prefix):
    port = int(database.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = TcpProxy(port)
    await proxy.start()
    proxied = database.replace(f":{port}/", f":{proxy.port}/")
    app = create_service_app(EXAMPLE, settings_for(proxied, unique_prefix, None,
                                                   metrics_interval=0.1))
    try:
        async with running(app) as client:
            await eventually(lambda: _ready_status(client, 200), what="ready first")
            proxy.down()
            response = await eventually(lambda: _ready_status(client, 503), timeout=30,
                                        what="unready with the database away")
            assert response.json()["checks"]["database"].startswith("unreachable")
            proxy.up()
    finally:
        proxy.up()
        await proxy.close()


async def _ready_status(client, status: int):
    response = await client.get("/readyz")
    return response if response.status_code == status else None


async def test_events_keep_flowing_while_the_read_side_has_no_connection_to_spare(
        database, unique_prefix):
    await _seen_table(database)
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL,
                                                        db_pool_size=1))
    consumer = _consumer(database, unique_prefix, db_pool_size=1)
    try:
        async with running(producer) as p, running(consumer) as c:
            await register(p, "before")
            await eventually(lambda: _count(c, 1), timeout=30)
            # the producer's read side (its API pool) is taken by a slow query of its own
            async with producer.state.runtime.pool.acquire():
                from shared.messages import SYSTEM_ACTOR
                from tests.example_services import RegisterThing

                commands = producer.state.runtime.commands
                async with producer.state.runtime.consumer_pool.acquire() as conn:
                    await commands.run(RegisterThing(name="while busy", unit="echeng"),
                                       actor=SYSTEM_ACTOR, conn=conn)
                # sequenced, relayed and consumed without the producer's API pool
                await eventually(lambda: _count(c, 2), timeout=30, what="the event consumed")
    finally:
        await delete_bus_objects(unique_prefix)


SERVE_FOREVER = textwrap.dedent("""
    import asyncio, sys
    from shared.hosting import serve_apps
    from shared.settings import Settings

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                    print("STARTED", flush=True)
                elif message["type"] == "lifespan.shutdown":
                    print("STOPPING", flush=True)
                    await asyncio.Event().wait()   # a shutdown that never ends by itself

    asyncio.run(serve_apps({"x": app}, Settings(graceful_timeout=600), {"x": 0}))
""")


def _read_until(proc: subprocess.Popen, wanted: str) -> None:
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip() == wanted:
            return
        seen.append(line)
    raise AssertionError(f"no {wanted} line; saw {seen}")


def test_a_second_signal_ends_the_process_at_once():
    import signal

    proc = subprocess.Popen([sys.executable, "-c", SERVE_FOREVER], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        _read_until(proc, "STARTED")
        proc.send_signal(signal.SIGTERM)
        _read_until(proc, "STOPPING")
        assert proc.poll() is None  # the first signal asks politely, and the stop hangs
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)   # a generous bound for a failure, not a speed: today it never ends
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
