"""Least privilege on the broker, probed as an attacker would (issue 10, finding 2): a service's
broker user can publish only to its own exchange and declare only its own objects, the operator
only puts dead letters back, and a message that claims to be a producer's event is believed only if
the producer's broker user published it and the producer's signed ledger holds the same event.
Each forgery ends in the dead-letter queue with its reason and opens no problem item."""
from __future__ import annotations

import asyncio
import json
import re

import aio_pika
import aiormq
import pytest

from services.system import BACKEND_SERVICES, all_consumers
from shared.envelope import Delivery
from shared.messages import new_event
from shared.provisioning import OPERATOR, BrokerPlan, operator_permissions, service_permissions, service_role
from shared.topology import Names
from tests.rectification.api_support import (
    REGISTRY_ACTOR,
    delete_rectification_bus_objects,
    ledger_entry,
    rectification,
)
from tests.support.actors import auth
from tests.support.broker import deliver_appended, publish_as, url_of
from tests.support.clock import Clock, at
from tests.support.databases import fetchval, store_as
from tests.support.polling import eventually
from tests.support.services import AMQP_URL

PREFIX = "ezhou."


def matches(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


@pytest.mark.unit
def test_every_queue_a_service_consumes_is_one_its_own_user_may_declare():
    names = Names(PREFIX)
    for service, consumer in all_consumers():
        own = service_permissions(service, re.escape(PREFIX))
        queue = names.queue(consumer.name)
        assert matches(own.configure, queue), (service, queue)
        for other in BACKEND_SERVICES:
            if other != service:
                assert not matches(service_permissions(other, re.escape(PREFIX)).configure, queue)


@pytest.mark.unit
def test_a_service_writes_only_its_own_exchange_and_reads_producers_exchanges():
    names = Names(PREFIX)
    registry = service_permissions("registry", re.escape(PREFIX))
    assert matches(registry.write, names.events_exchange("registry"))
    assert matches(registry.configure, names.dlq("registry"))
    for refused in (names.events_exchange("inspection"), names.events_exchange("rectification"),
                    "amq.default", names.queue("rectification.on-registry"), "registry.events",
                    "ezhou.registryx.events"):
        assert not matches(registry.write, refused), refused
        assert not matches(registry.configure, refused), refused
    assert matches(registry.read, names.events_exchange("inspection"))  # to bind its queues
    assert not matches(registry.read, names.dlq("inspection"))
    assert not matches(registry.read, names.queue("rectification.on-registry"))


@pytest.mark.unit
def test_the_operator_puts_dead_letters_back_and_nothing_else():
    names = Names(PREFIX)
    operator = operator_permissions(re.escape(PREFIX))
    assert matches(operator.write, "amq.default")
    assert matches(operator.read, names.dlq("rectification"))
    for service in BACKEND_SERVICES:
        assert not matches(operator.write, names.events_exchange(service))
        assert not matches(operator.read, names.events_exchange(service))
        assert not matches(operator.configure, names.dlq(service))
    assert set(BrokerPlan("/", BACKEND_SERVICES, prefix=PREFIX).users()) == {
        *(service_role(s) for s in BACKEND_SERVICES), OPERATOR}


# ----- on the real broker ----------------------------------------------------------------------


async def refused(action) -> str:
    """Run `action` on a fresh channel of its own; return the broker's refusal, in words."""
    with pytest.raises((aio_pika.exceptions.ChannelClosed, aiormq.exceptions.AMQPError)) as refusal:
        await action()
    return str(refusal.value)


@pytest.mark.integration
async def test_a_service_user_is_refused_what_is_not_its_own(unique_prefix):
    names = Names(unique_prefix)
    body = b'{"x": 1}'
    connection = await aio_pika.connect(url_of(service_role("registry")))
    async with connection:
        async def publish_to(exchange: str, user_id: str = service_role("registry")) -> None:
            channel = await connection.channel(publisher_confirms=True)
            target = (channel.default_exchange if exchange == ""
                      else await channel.get_exchange(exchange, ensure=False))
            await target.publish(aio_pika.Message(body, user_id=user_id),
                                 routing_key=f"{unique_prefix}rectification.on-registry")
            await channel.close()

        async def declare_queue(name: str) -> None:
            channel = await connection.channel()
            await channel.declare_queue(name, durable=True)

        reasons = [
            await refused(lambda: publish_to(names.events_exchange("inspection"))),
            await refused(lambda: publish_to("")),  # straight into a consumer queue
            await refused(lambda: declare_queue(names.queue("rectification.on-registry-x"))),
        ]
        assert all("ACCESS_REFUSED" in reason for reason in reasons), reasons
        # Publishing as somebody else: RabbitMQ checks `user_id` against the login.
        spoofed = await refused(lambda: publish_to(names.events_exchange("registry"),
                                                   user_id=service_role("inspection")))
        assert "PRECONDITION_FAILED" in spoofed, spoofed
        # Its own exchange is open to it.
        await publish_to(names.events_exchange("registry"))

    operator = await aio_pika.connect(url_of(OPERATOR))
    async with operator:
        async def operator_publishes() -> None:
            channel = await operator.channel(publisher_confirms=True)
            target = await channel.get_exchange(names.events_exchange("registry"), ensure=False)
            await target.publish(aio_pika.Message(body, user_id=OPERATOR), routing_key="x")

        assert "ACCESS_REFUSED" in await refused(operator_publishes)


async def dead_letters(prefix: str, n: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """The first `n` messages of rectification's DLQ (read as the test's administrator)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{prefix}rectification.dlq", passive=True)

        async def all_there() -> bool:
            found = await channel.declare_queue(f"{prefix}rectification.dlq", passive=True)
            return found.declaration_result.message_count >= n

        await eventually(all_there, timeout=30, what=f"{n} dead letters")
        messages = []
        for _ in range(n):
            message = await queue.get(no_ack=True, timeout=5)
            assert message is not None
            messages.append(message)
        return messages


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_forged_and_altered_events_are_dead_lettered_and_open_no_item(
        database, tmp_path, unique_prefix):
    clock = Clock(at(2024, 5, 10))
    names = Names(unique_prefix)
    exchange = names.events_exchange("registry")
    try:
        async with rectification(database, tmp_path, clock, amqp_url=AMQP_URL,
                                 prefix=unique_prefix) as api:
            # 1. A well-formed ledger entry, published with the administrator's account (as
            #    `guest` could) and in no ledger.
            never_appended = new_event("project-p-forged-1", ledger_entry("p-forged-1", "echeng",
                                                                          "forged-1"),
                                       actor=REGISTRY_ACTOR, occurred_at=at(2024, 3, 12, 10))
            forged = Delivery(event_id=never_appended.event_id, event_type=never_appended.event_type,
                              schema_version=never_appended.schema_version, source="registry",
                              stream_id=never_appended.stream_id, stream_version=1,
                              occurred_at=at(2024, 3, 12, 10),
                              payload=never_appended.payload).outgoing()
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                target = await channel.get_exchange(exchange, ensure=False)
                await target.publish(aio_pika.Message(
                    forged.body, headers=forged.headers, message_id=forged.event_id, user_id="guest",
                    content_type="application/json"), routing_key=forged.event_type)
            # 2. The same message from the registry's own broker user: still in no ledger.
            await publish_as(service_role("registry"), exchange, forged.body,
                             routing_key=forged.event_type, headers=forged.headers,
                             message_id=forged.event_id)
            # 3. An event the registry did append, its payload altered on the way.
            real = new_event("project-p-huarong-9", ledger_entry("p-huarong-9", "huarong", "real-9"),
                             actor=REGISTRY_ACTOR, occurred_at=at(2024, 3, 12, 10))
            async with store_as(database, "registry") as registry:
                await registry.append([real])
                [recorded] = await registry.read_stream(real.stream_id)
            await eventually(lambda: fetchval(database, "SELECT count(*) FROM es.ledger WHERE "
                                              "event_id = $1", real.event_id), what="the ledger")
            altered = Delivery.from_recorded(recorded, "registry").outgoing()
            payload = json.loads(altered.body)
            payload["unit"] = "echeng"  # moved to another unit's list
            await publish_as(service_role("registry"), exchange, json.dumps(payload).encode(),
                             routing_key=altered.event_type, headers=altered.headers,
                             message_id=altered.event_id)

            # Each of rectification's two consumers of registry events refuses each forgery.
            letters = [m for m in await dead_letters(unique_prefix, 6)
                       if m.headers["x-lookback-consumer"] == "rectification.on-registry"]
            reasons = sorted((str(m.headers["x-lookback-published-by"]),
                              str(m.headers["x-lookback-reason"])) for m in letters)
            assert [who for who, _ in reasons] == ["guest", service_role("registry"),
                                                   service_role("registry")], reasons
            guest, *registry = (why for _, why in reasons)
            assert guest.startswith("published by broker user 'guest', not by registry's") and (
                guest.endswith("refused as forged")), guest
            assert sorted(registry) == sorted([
                f"event {never_appended.event_id} is not in the signed ledger: refused as forged",
                f"event {real.event_id}'s payload differs from the signed ledger's: refused as forged",
            ]), registry

            # The genuine delivery of a real entry still opens its item; no forgery opened one.
            await deliver_appended(database, unique_prefix, "registry", new_event(
                "project-p-huarong-2", ledger_entry("p-huarong-2", "huarong", "real-2"),
                actor=REGISTRY_ACTOR, occurred_at=at(2024, 3, 12, 10)))

            async def genuine_item() -> list | None:
                response = await api.get("/problems", headers=auth("admin-1"))
                found = response.json()["items"]
                return found if found else None

            found = await eventually(genuine_item, timeout=30, what="the genuine item")
            await asyncio.sleep(0.5)
            response = await api.get("/problems", headers=auth("admin-1"))
            projects = sorted(item["project_id"] for item in response.json()["items"])
            assert projects == ["p-huarong-2"], found
    finally:
        await delete_rectification_bus_objects(unique_prefix)
