"""The test broker's identities: every service logs in as its own broker user, as in production
(docs/adr/0009), and a test that puts a message on the bus by hand does it as somebody.

The users are provisioned once per run through the management API, with permissions over every
test prefix (`t<10 hex>` with or without its dot). Their passwords are fixed and test-only: the
test broker is a local development server (it still has `guest`), and runs that share it at once
must not change each other's passwords under their feet.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika

from shared.envelope import Delivery, producer_of, source_uri
from shared.messages import Actor, Event, NewEvent, new_event
from shared.provisioning import OPERATOR, BrokerPlan, provision_broker, service_role
from shared.settings import Settings
from shared.store import login_dsn
from shared.topology import Names
from tests.support.databases import fetchval, store_as
from tests.support.polling import eventually
from tests.support.services import AMQP_URL

BROKER_ADMIN_URL = os.environ.get("LOOKBACK_TEST_BROKER_ADMIN_URL",
                                  "http://guest:guest@127.0.0.1:15672")
TEST_PREFIX_PATTERN = r"(t[0-9a-f]{10}\.?)?"


def broker_password(user: str) -> str:
    return f"test-only-{user}"


def secrets_dir(services: tuple[str, ...]) -> Path:
    """A folder holding every test broker user's password, as `lookback provision` leaves them
    for the services (`<user>.amqp.password`); services find it through LOOKBACK_SECRETS_DIR."""
    folder = Path(tempfile.mkdtemp(prefix="lookback-test-secrets-"))
    for user in (*(service_role(s) for s in services), OPERATOR):
        path = folder / f"{user}.amqp.password"
        path.write_text(broker_password(user))
        path.chmod(0o600)
    return folder


async def provision_test_broker(services: tuple[str, ...]) -> list[str]:
    """The services' and the operator's users on the test vhost, over every test prefix."""
    admin, vhost = urlsplit(BROKER_ADMIN_URL), urlsplit(AMQP_URL).path.lstrip("/") or "/"
    users = (*(service_role(s) for s in services), OPERATOR)
    plan = BrokerPlan(vhost, services, {user: broker_password(user) for user in users},
                      prefix_pattern=TEST_PREFIX_PATTERN)
    return await provision_broker(f"{admin.scheme}://{admin.hostname}:{admin.port or 15672}",
                                  admin.username or "", admin.password or "", plan)


def url_of(user: str) -> str:
    """The test broker's URL, logged in as `user` (a service's `lookback_<service>`, the operator)."""
    return login_dsn(AMQP_URL, user, broker_password(user))


async def declare_exchanges(prefix: str, services: tuple[str, ...]) -> None:
    """Every service's events exchange under `prefix`, as provisioning declares them: a consumer
    that starts before its producer binds to an exchange it may not declare itself."""
    names = Names(prefix)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for service in services:
            await channel.declare_exchange(names.events_exchange(service),
                                           aio_pika.ExchangeType.TOPIC, durable=True)


async def publish_as(user: str, exchange: str, body: bytes, *, routing_key: str,
                     headers: dict[str, object], message_id: str, times: int = 1) -> None:
    """Publish one message `times` times as `user` to `exchange` ("" is the default exchange),
    stamped with `user` as RabbitMQ requires, waiting for the broker's confirmation."""
    connection = await aio_pika.connect(url_of(user))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = (channel.default_exchange if exchange == ""
                  else await channel.get_exchange(exchange, ensure=False))
        for _ in range(times):
            await target.publish(aio_pika.Message(
                body, headers=headers, message_id=message_id, user_id=user,
                content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=routing_key)


async def deliver_as_producer(dsn: str, prefix: str, producer: str, stream_id: str, event: Event, *,
                              actor: Actor, occurred_at: datetime, times: int = 1,
                              legacy: bool = False) -> uuid.UUID:
    """An event `producer` really appended, delivered `times` times as its relay publishes it
    (a redelivery repeats the very message). Consumers act only on what the producer's ledger
    holds (docs/adr/0009), so that is how a test puts a real event on the bus by hand.
    `legacy`: in the header form relays used before (docs/adr/0016), as archives still hold it."""
    return await deliver_appended(dsn, prefix, producer, new_event(
        stream_id, event, actor=actor, occurred_at=occurred_at), times=times, legacy=legacy)


def deployment_of(prefix: str) -> str:
    """The deployment a service under test names in its ce-source (Settings.deployment_name)."""
    return Settings(bus_prefix=prefix).deployment_name


def legacy_headers(headers: dict[str, object]) -> dict[str, object]:
    """The headers as relays wrote them before: the producer's bare name as source, the schema
    version, stream version and global position as AMQP integers."""
    legacy = dict(headers)
    legacy["ce-source"] = producer_of(str(headers["ce-source"]))
    for name in ("ce-schemaversion", "ce-streamversion", "ce-globalposition"):
        if name in legacy:
            legacy[name] = int(str(legacy[name]))
    return legacy


async def deliver_appended(dsn: str, prefix: str, producer: str, new: NewEvent, *,
                           times: int = 1, legacy: bool = False) -> uuid.UUID:
    """`new` appended as the producer's database role, awaited in the ledger (a service under
    test runs the sequencer), then published `times` times as the producer's broker user."""
    async with store_as(dsn, producer) as store:
        [appended] = await store.append([new])
        await eventually(lambda: fetchval(dsn, "SELECT count(*) FROM es.ledger WHERE event_id = $1",
                                          appended.event_id), what="the event in the ledger")
        [recorded] = [e for e in await store.read_stream(new.stream_id)
                      if e.event_id == appended.event_id]
    message = Delivery.from_recorded(
        recorded, source_uri(deployment_of(prefix), producer)).outgoing()
    headers = legacy_headers(message.headers) if legacy else message.headers
    await publish_as(service_role(producer), Names(prefix).events_exchange(producer), message.body,
                     routing_key=message.event_type, headers=headers,
                     message_id=message.event_id, times=times)
    return appended.event_id


async def declare_system_bus(prefix: str) -> None:
    """What `lookback provision` declares: every service's exchange and every consumer queue of
    the system, so that no relay publishes before the queues that should receive it exist."""
    from services.system import BACKEND_SERVICES, all_consumers
    from shared.hosting import declare_bus

    await declare_bus(AMQP_URL, prefix, BACKEND_SERVICES, all_consumers())
