"""The whole path on real servers: HTTP command with a token → event appended → sequenced →
relayed → consumed once by another service → its read model updated. Also the failure cases:
duplicates, poison messages, broker connection cut mid-stream, broker down while appending."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from shared.messages import NewEvent
from shared.provisioning import service_role
from shared.service import create_service_app
from shared.settings import Settings
from tests.example_services import EXAMPLE, SEEN_TABLE, ThingRegistered, consumer_spec
from tests.support.actors import auth, city_admin
from tests.support.broker import deliver_appended, deliver_as_producer, publish_as
from tests.support.databases import execute, fetchval, pool_as
from tests.support.faults import TcpProxy
from tests.support.polling import eventually
from tests.support.services import AMQP_URL, SERVICE_POOL_SIZE, running, service_settings
from tests.support.services import delete_bus_objects as delete_service_bus_objects

pytestmark = pytest.mark.integration


def settings_for(dsn: str, prefix: str, amqp_url: str | None, **extra: Any) -> Settings:
    return service_settings(dsn, amqp_url=amqp_url, prefix=prefix, **extra)


@asynccontextmanager
async def consumer_service(dsn: str, prefix: str, amqp_url: str | None,
                           **extra: Any) -> AsyncIterator[tuple[FastAPI, asyncpg.Pool]]:
    """The example consumer (its read-model table, its own pool to read it), not yet started."""
    await execute(dsn, SEEN_TABLE)
    async with pool_as(dsn, "exampleconsumer", max_size=SERVICE_POOL_SIZE) as pool:
        app = create_service_app(consumer_spec(), settings_for(dsn, prefix, amqp_url,
                                                               run_sequencer=False, **extra),
                                 pool=pool)
        yield app, pool


@asynccontextmanager
async def system(dsn: str, prefix: str, *, producer_amqp: str | None, consumer_amqp: str | None):
    """The producer (with the sequencer) and the consumer service, both running."""
    producer = create_service_app(EXAMPLE, settings_for(dsn, prefix, producer_amqp))
    try:
        async with consumer_service(dsn, prefix, consumer_amqp) as (consumer, _):
            async with running(producer) as p, running(consumer) as c:
                yield p, c
    finally:
        await delete_bus_objects(prefix)


async def delete_bus_objects(prefix: str) -> None:
    await delete_service_bus_objects(prefix, services=("example", "exampleconsumer"),
                                     consumers=("exampleconsumer.on-example",))


async def seen(client: httpx.AsyncClient) -> list[dict]:
    response = await client.get("/seen")
    return response.json()


async def register(client: httpx.AsyncClient, name: str, unit: str = "echeng", who: str = "admin-1"):
    return await client.post("/things", json={"name": name, "unit": unit}, headers=auth(who))


@pytest.mark.parametrize("mode", ["rabbitmq", "embedded"])
async def test_a_command_reaches_the_other_service_exactly_once(database, unique_prefix, mode):
    amqp = AMQP_URL if mode == "rabbitmq" else None
    async with system(database, unique_prefix, producer_amqp=amqp, consumer_amqp=amqp) as (p, c):
        response = await register(p, "示例设施一")
        assert response.status_code == 201, response.text
        rows = await eventually(lambda: seen(c), what="the consumer's read model")
        assert rows == [{"thing_id": response.json()["thing_id"], "name": "示例设施一"}]
        await asyncio.sleep(0.3)  # a second delivery, if any, would land by now
        assert len(await seen(c)) == 1


async def test_the_same_event_published_twice_has_one_effect(database, unique_prefix):
    async with system(database, unique_prefix, producer_amqp=AMQP_URL, consumer_amqp=AMQP_URL) as (p, c):
        await register(p, "warm-up")
        await eventually(lambda: seen(c))
        # An event the producer appended, published twice more as its relay would (with the
        # relay's own publication, three deliveries of one event).
        event_id = await deliver_as_producer(
            database, unique_prefix, "example", f"example-{uuid.uuid4()}",
            ThingRegistered(thing_id="dup", name="twice", unit="echeng"), actor=city_admin(),
            occurred_at=datetime.now(UTC), times=2)
        await eventually(lambda: _has(c, "twice"))
        await asyncio.sleep(0.5)
        rows = [r for r in await seen(c) if r["name"] == "twice"]
        assert len(rows) == 1
        inbox = await fetchval(database, "SELECT count(*) FROM es.inbox WHERE event_id = $1", event_id)
        assert inbox == 1


async def test_unparseable_messages_go_to_the_dead_letter_queue_with_the_reason(database, unique_prefix):
    async with system(database, unique_prefix, producer_amqp=AMQP_URL, consumer_amqp=AMQP_URL) as (p, c):
        good_headers = {"ce-specversion": "1.0", "ce-type": "example.ThingRegistered",
                        "ce-source": "example", "ce-subject": "example-x"}
        cases = {
            "not json": (b"{not json", {**good_headers, "ce-id": str(uuid.uuid4())}),
            "no type": (b"{}", {k: v for k, v in good_headers.items() if k != "ce-type"}
                        | {"ce-id": str(uuid.uuid4())}),
            "no producer's source": (b"{}", {**good_headers, "ce-id": str(uuid.uuid4()),
                                             "ce-source": "https://example.invalid/things"}),
            "another producer's source": (b"{}", {**good_headers, "ce-id": str(uuid.uuid4()),
                                                  "ce-source": "urn:lookback:elsewhere:registry"}),
        }
        for body, headers in cases.values():
            await publish_as(service_role("example"), f"{unique_prefix}example.events", body,
                             routing_key="example.ThingRegistered", headers=headers,
                             message_id=headers["ce-id"])
        # A payload this consumer cannot read, though its producer did append it (a consumer
        # older than the producer's schema, say): it is dead-lettered too, never dropped.
        await deliver_appended(database, unique_prefix, "example", NewEvent(
            "example-x", uuid.uuid4(), "example.ThingRegistered", 1, {"thing_id": 1},
            {"actor": city_admin().model_dump(mode="json")}))
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(f"{unique_prefix}exampleconsumer.dlq", passive=True)
            reasons = []

            expected = ("not JSON", "invalid example.ThingRegistered payload",
                        "missing CloudEvents headers: ce-type",
                        "is neither urn:lookback:<deployment>:<service> nor a service's name",
                        "names registry, not example: refused as forged")

            async def collect() -> bool:  # the relay publishes the unreadable one a second time
                message = await dlq.get(fail=False, no_ack=True)
                if message is not None:
                    reasons.append(message.headers.get("x-lookback-reason"))
                return all(any(e in str(r) for r in reasons) for e in expected)

            await eventually(collect, what="the five dead letters")
        assert await seen(c) == []


async def test_a_consumer_reads_the_current_header_form_and_the_one_archives_still_hold(
        database, unique_prefix):
    """Archive streams and dead-letter queues keep messages published before ce-source became a
    URN and the extensions strings (docs/adr/0016): they are read as before, and checked as
    strictly (broker user, the producer's ledger)."""
    async with system(database, unique_prefix, producer_amqp=AMQP_URL, consumer_amqp=AMQP_URL) as (p, c):
        for name, legacy in (("current form", False), ("older form", True)):
            await deliver_as_producer(
                database, unique_prefix, "example", f"example-{uuid.uuid4()}",
                ThingRegistered(thing_id=name, name=name, unit="echeng"), actor=city_admin(),
                occurred_at=datetime.now(UTC), legacy=legacy)
        rows = await eventually(lambda: _count_at_least(c, 2), what="both forms handled")
    assert sorted(r["name"] for r in rows) == ["current form", "older form"]


async def test_a_domain_rejection_is_acknowledged_and_logged_not_dead_lettered(database, unique_prefix):
    with capture_logs() as logs:
        async with system(database, unique_prefix, producer_amqp=AMQP_URL,
                          consumer_amqp=AMQP_URL) as (p, c):
            await register(p, "reject-in-consumer")
            await register(p, "after")
            await eventually(lambda: _has(c, "after"))
    rejected = [line for line in logs if line.get("event") == "message_rejected"]
    assert len(rejected) == 1 and rejected[0]["outcome"] == "rejected"
    handled = [line for line in logs if line.get("event") == "message_handled"]
    assert {"service", "event_id", "event_type", "correlation_id", "outcome"} <= set(handled[0])
    assert not [line for line in logs if line.get("event") == "message_dead_lettered"]


async def test_a_cut_connection_mid_stream_loses_nothing_and_duplicates_nothing(database, unique_prefix):
    proxy = TcpProxy(5672)
    port = await proxy.start()
    via_proxy = f"amqp://guest:guest@127.0.0.1:{port}/"
    try:
        async with system(database, unique_prefix, producer_amqp=via_proxy,
                          consumer_amqp=via_proxy) as (p, c):
            names = [f"n{i:03d}" for i in range(60)]
            for i, name in enumerate(names):
                assert (await register(p, name)).status_code == 201
                if i in (20, 40):
                    proxy.cut()
            rows = await eventually(lambda: _count_at_least(c, len(names)), timeout=60,
                                    what="all 60 things")
            await asyncio.sleep(0.5)
            rows = await seen(c)
            assert sorted(r["name"] for r in rows) == names
    finally:
        await proxy.close()


async def test_the_relay_catches_up_after_a_broker_outage(database, unique_prefix):
    proxy = TcpProxy(5672)
    port = await proxy.start()
    via_proxy = f"amqp://guest:guest@127.0.0.1:{port}/"
    try:
        async with system(database, unique_prefix, producer_amqp=via_proxy,
                          consumer_amqp=AMQP_URL) as (p, c):
            await register(p, "before")
            await eventually(lambda: _has(c, "before"))
            proxy.down()
            await eventually(lambda: _not_ready(p), what="producer not ready while broker is away")
            for i in range(5):
                assert (await register(p, f"during{i}")).status_code == 201  # the store takes them
            await asyncio.sleep(0.5)
            assert not await _has(c, "during0")
            proxy.up()
            await eventually(lambda: _count_at_least(c, 6), timeout=60, what="catch-up")
            await eventually(lambda: _ready(p), timeout=30, what="ready again")
    finally:
        await proxy.close()


async def test_requests_without_a_valid_token_or_right_get_401_or_403_and_write_nothing(
        database, unique_prefix):
    async with system(database, unique_prefix, producer_amqp=None, consumer_amqp=None) as (p, c):
        assert (await p.post("/things", json={"name": "x", "unit": "echeng"})).status_code == 401
        bad = await register(p, "x", who="nope")
        assert bad.status_code == 401 and bad.json()["error"] == "unauthenticated"
        other_unit = await register(p, "x", unit="huarong", who="rep-echeng-1")
        assert other_unit.status_code == 403 and "huarong" in other_unit.json()["detail"]
        assert (await register(p, "x", who="leader-1")).status_code == 403
        assert (await register(p, "x", unit="echeng", who="rep-echeng-1")).status_code == 201
        count = await fetchval(database, "SELECT count(*) FROM es.events")
        assert count == 1


async def test_the_actor_is_written_into_the_event_metadata(database, unique_prefix):
    async with system(database, unique_prefix, producer_amqp=None, consumer_amqp=None) as (p, c):
        await register(p, "who", who="rep-echeng-1")
        meta = await fetchval(database, "SELECT metadata FROM es.events")
        meta = json.loads(meta) if isinstance(meta, str) else meta
        assert meta["actor"] == {"id": "rep-echeng-1", "name": "鄂城填报人(示例)",
                                 "role": "district_reporter", "unit": "echeng"}
        assert meta["event_type"] == "example.ThingRegistered"


async def test_operations_endpoints_tell_the_truth(database, unique_prefix):
    async with system(database, unique_prefix, producer_amqp=AMQP_URL, consumer_amqp=AMQP_URL) as (p, c):
        assert (await p.get("/healthz")).json()["status"] == "alive"
        await eventually(lambda: _ready(c), what="consumer ready")
        await register(p, "m")
        await eventually(lambda: _has(c, "m"))
        metrics = (await c.get("/metrics")).text
        assert ('lookback_messages_handled_total{consumer="exampleconsumer.on-example",'
                'outcome="handled"} 1.0') in metrics
        assert "lookback_relay_lag_events" in (await p.get("/metrics")).text
        spec = (await p.get("/asyncapi.json")).json()
        assert any(c["address"] == "example.ThingRegistered" for c in spec["channels"].values())
        html = (await p.get("/asyncapi")).text
        assert "asyncapi/try" not in html
        assert (await p.get("/openapi.json")).json()["paths"]["/things"]


async def _has(client: httpx.AsyncClient, name: str) -> bool:
    return any(r["name"] == name for r in await seen(client))


async def _count_at_least(client: httpx.AsyncClient, n: int):
    rows = await seen(client)
    return rows if len(rows) >= n else False


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _not_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 503


async def test_graceful_shutdown_finishes_the_message_in_flight(database, unique_prefix):
    from tests import example_services

    example_services.SLOW_STARTED.clear()
    settings = settings_for(database, unique_prefix, AMQP_URL)
    producer = create_service_app(EXAMPLE, settings)
    try:
        async with consumer_service(database, unique_prefix, AMQP_URL) as (consumer, consumer_pool), \
                running(producer) as p:
            async with running(consumer):
                await register(p, "slow one")
                await eventually(example_services.SLOW_STARTED.is_set, what="the slow reaction")
            # the consumer has stopped: the in-flight message was finished and acknowledged
            rows = await consumer_pool.fetch("SELECT name FROM public.example_seen")
            assert [r["name"] for r in rows] == ["slow one"]
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(f"{unique_prefix}exampleconsumer.on-example",
                                                    passive=True)
                assert queue.declaration_result.message_count == 0
    finally:
        await delete_bus_objects(unique_prefix)


async def test_a_message_that_keeps_failing_is_retried_a_bounded_number_of_times_then_dead_lettered(
        database, unique_prefix):
    producer = create_service_app(EXAMPLE, settings_for(database, unique_prefix, AMQP_URL))
    try:
        async with consumer_service(database, unique_prefix, AMQP_URL,
                                    retry_delays=(0.01, 0.01)) as (consumer, consumer_pool):
            with capture_logs() as logs:
                async with running(producer) as p, running(consumer) as c:
                    await register(p, "always-fails")
                    await register(p, "fine")
                    await eventually(lambda: _has(c, "fine"), timeout=30)
                    connection = await aio_pika.connect(AMQP_URL)
                    async with connection:
                        channel = await connection.channel()
                        dlq = await channel.declare_queue(f"{unique_prefix}exampleconsumer.dlq",
                                                          passive=True)
                        message = await eventually(lambda: dlq.get(fail=False, no_ack=True),
                                                   timeout=30, what="the poison message in the DLQ")
                        assert json.loads(message.body)["name"] == "always-fails"
                        death = message.headers["x-death"][0]
                        assert death["reason"] == "delivery_limit"
            attempts = [line for line in logs if line.get("event") == "message_retry"]
            # 3 in-process attempts per delivery (the first and one after each of the 2 pauses),
            # deliveries bounded by x-delivery-limit (5) + 1
            assert 3 <= len(attempts) <= 3 * 6
            rows = await consumer_pool.fetch("SELECT name FROM public.example_seen")
            assert [r["name"] for r in rows] == ["fine"]
    finally:
        await delete_bus_objects(unique_prefix)


async def test_a_dead_background_task_is_logged_and_makes_the_service_unready(database, unique_prefix):
    class BrokenSequencer:
        async def run(self, stop):
            raise RuntimeError("sequencer bug")

    app = create_service_app(EXAMPLE, settings_for(database, unique_prefix, None),
                             sequencer_factory=lambda settings: BrokenSequencer())
    with capture_logs() as logs:
        async with running(app) as client:
            response = await eventually(lambda: _not_ready_response(client), what="unready")
    assert response.json()["checks"]["sequencer"] == "stopped"
    failed = [line for line in logs if line.get("event") == "background_task_failed"]
    assert failed and "sequencer bug" in failed[0]["error"]


async def _not_ready_response(client: httpx.AsyncClient):
    response = await client.get("/readyz")
    return response if response.status_code == 503 else None


def test_dead_letter_reasons_name_fields_but_never_quote_their_values():
    from shared.consuming import ConsumerSpec, Outcome, decode
    from shared.envelope import Delivery
    from tests.example_services import CONTRACT, ThingRegistered, record_thing

    spec = ConsumerSpec(name="x.on-example", source=CONTRACT, reactions={ThingRegistered: record_thing})
    delivery = Delivery(event_id=uuid.uuid4(), event_type="example.ThingRegistered", schema_version=1,
                        source="example", stream_id="example-1", stream_version=1,
                        payload={"thing_id": 7, "name": ["王某某", "13812345678"]})
    result = decode(spec, delivery)
    assert result.outcome is Outcome.DEAD
    assert "thing_id: Input should be a valid string" in result.reason
    assert "unit: Field required" in result.reason and "name: Input should be a valid string" in result.reason
    assert "13812345678" not in result.reason and "王某某" not in result.reason
