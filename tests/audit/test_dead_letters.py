"""`lookback dlq list | show | replay | discard`: per service, on the local transport's table and on
RabbitMQ's DLQ; each decision is an event with who and why; the depth is a metric."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date

import aio_pika
import pytest
from typer.testing import CliRunner

from services.cli import app as lookback
from services.registry.events import LedgerEntryAdded, OperatingStatus
from shared.envelope import Delivery
from shared.messages import NewEvent, new_event
from tests.rectification import api_support as rect
from tests.support.actors import auth
from tests.support.clock import Clock, at
from tests.support.databases import fetch, fetchval, store_as
from tests.support.polling import eventually
from tests.support.services import AMQP_URL

pytestmark = pytest.mark.integration


async def dlq(env: dict[str, str], *args: str):
    return await asyncio.to_thread(CliRunner().invoke, lookback, ["dlq", *args], env=env)


async def metric(client, name: str) -> str:
    text = (await client.get("/metrics")).text
    return next((line for line in text.splitlines() if line.startswith(name)), "")


def ledger_entry(project_id: str) -> LedgerEntryAdded:
    return LedgerEntryAdded(
        entry_id=f"{project_id}-L1", project_id=project_id, project_type="canteen",
        project_name="凤凰街道幸福食堂(示例)", project_year=2021, unit="echeng", township="凤凰街道",
        village=None, provincial_key=False, reason="not_operating",
        reason_details=("fewer_than_min_services",), status=OperatingStatus.NOT_OPERATING,
        listed_on=date(2024, 3, 8))


async def test_a_local_dead_letter_is_listed_replayed_without_luck_then_discarded(database, tmp_path):
    env = {"LOOKBACK_DATABASE_URL": database}
    event_id = uuid.uuid4()
    async with rect.rectification(database, tmp_path, Clock(at(2024, 4, 10))) as api:
        # A registry event the consumer cannot read: its payload lacks every required field.
        async with store_as(database, "registry") as registry:
            await registry.append([NewEvent(
                "project-broken", event_id, "registry.ProjectRegistered", 1,
                {"project_id": "broken", "mobile": "13812341234"},
                {"event_id": str(event_id), "event_type": "registry.ProjectRegistered",
                 "schema_version": 1, "actor": {"id": "x", "name": "x", "role": "city_admin"}})])
        depth = 'lookback_dead_letters{queue="rectification.registry-view"}'
        await eventually(lambda: _ends(metric(api, depth), " 1.0"), what="the depth metric")

        listed = await dlq(env, "list", "rectification")
        assert listed.exit_code == 0, listed.output
        assert f"{event_id}  rectification.registry-view  registry.ProjectRegistered" in listed.stdout
        assert "reason: invalid registry.ProjectRegistered payload" in listed.stdout
        shown = await dlq(env, "show", "rectification", str(event_id))
        assert '"mobile": "138****1234"' in shown.stdout and "13812341234" not in shown.stdout

        replayed = await dlq(env, "replay", "rectification", str(event_id), "--by", "运维员甲",
                             "--why", "升级后重试")
        assert replayed.exit_code == 0, replayed.output
        assert "still fails: invalid registry.ProjectRegistered payload" in replayed.stdout
        discarded = await dlq(env, "discard", "rectification", str(event_id), "--by", "运维员甲",
                              "--why", "登记端已重新登记该项目")
        assert discarded.exit_code == 0, discarded.output
        assert (await dlq(env, "list", "rectification")).stdout.startswith(
            "rectification: 0 dead letter(s)")
        await eventually(lambda: _ends(metric(api, depth), " 0.0"), what="the depth back to 0")

    decisions = await fetch(database, "SELECT event_type, payload, metadata FROM es.events "
                                      "WHERE stream_id = 'deadletter-rectification.registry-view' "
                                      "ORDER BY stream_version")
    assert [r["event_type"] for r in decisions] == ["deadletter.Replayed", "deadletter.Discarded"]
    first, second = (json.loads(r["payload"]) for r in decisions)
    assert first["outcome"] == "dead_lettered" and first["why"] == "升级后重试"
    assert second["why"] == "登记端已重新登记该项目" and second["event_id"] == str(event_id)
    assert json.loads(decisions[1]["metadata"])["actor"]["name"] == "运维员甲"


async def _ends(awaitable, suffix: str) -> bool:
    return (await awaitable).endswith(suffix)


async def test_rabbitmq_dead_letters_are_replayed_to_their_consumer_or_discarded(
        database, tmp_path, unique_prefix):
    env = {"LOOKBACK_DATABASE_URL": database, "LOOKBACK_AMQP_URL": AMQP_URL,
           "LOOKBACK_BUS_PREFIX": unique_prefix}
    clock = Clock(at(2024, 4, 10))
    try:
        async with rect.rectification(database, tmp_path, clock, amqp_url=AMQP_URL,
                                      prefix=unique_prefix) as api:
            # An entry the registry really appended (in its ledger), left in the DLQ by the
            # broker after the delivery limit: the message and its x-death.
            good = ledger_entry("p-echeng-7")
            async with store_as(database, "registry") as registry:
                appended = new_event("project-p-echeng-7", good, actor=rect.REGISTRY_ACTOR,
                                     occurred_at=at(2024, 3, 8, 10))
                await registry.append([appended])
                [recorded] = await registry.read_stream("project-p-echeng-7")
            good_id = str(appended.event_id)
            await eventually(lambda: fetchval(database, "SELECT count(*) FROM es.ledger "
                                              "WHERE event_id = $1", appended.event_id),
                             what="the entry in the ledger")
            message = Delivery.from_recorded(recorded, "registry").outgoing()
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                dlx = await channel.get_exchange(f"{unique_prefix}rectification.dlx")
                await dlx.publish(aio_pika.Message(
                    message.body, message_id=good_id, type=good.type_name,
                    content_type="application/json",
                    headers={**message.headers,
                             "x-death": [{"queue": f"{unique_prefix}rectification.on-registry",
                                          "reason": "delivery_limit", "count": 5}]}),
                    routing_key="")
                # A message that claims to be the registry's but was published by another broker
                # user (the test's administrator) and is in no ledger: refused as forged.
                events = await channel.get_exchange(f"{unique_prefix}registry.events")
                bad_id = str(uuid.uuid4())
                bad_type = "registry.ProjectRegistered"  # one consumer (the registry view) takes it
                await events.publish(aio_pika.Message(
                    b'{"project_id": "p-x"}', message_id=bad_id, type=bad_type,
                    headers={"ce-specversion": "1.0", "ce-id": bad_id, "ce-type": bad_type,
                             "ce-source": "registry", "ce-subject": "project-p-x",
                             "ce-schemaversion": 1, "ce-streamversion": 1,
                             "ce-time": "2024-03-08T02:00:00Z"}), routing_key=bad_type)
            depth = f'lookback_dead_letters{{queue="{unique_prefix}rectification.dlq"}}'
            await eventually(lambda: _ends(metric(api, depth), " 2.0"), what="two in the DLQ")

            listed = await dlq(env, "list", "rectification")
            assert listed.exit_code == 0, listed.output
            assert "rectification: 2 dead letter(s)" in listed.stdout
            assert "the broker dead-lettered it (delivery_limit, 5 time(s))" in listed.stdout
            assert ("reason: published by broker user '(nobody)', not by registry's: refused as "
                    "forged") in listed.stdout  # RabbitMQ checks a user_id given, adds none

            # Put back by the operator's broker user, it is accepted: it matches the ledger.
            replayed = await dlq(env, "replay", "rectification", good_id, "--by", "运维员乙",
                                 "--why", "数据库已恢复")
            assert replayed.exit_code == 0, replayed.output
            assert "replayed: republished" in replayed.stdout

            async def item_opened() -> bool:
                body = (await api.get("/problems", params={"project_id": "p-echeng-7"},
                                      headers=auth("admin-1"))).json()
                return bool(body["items"])

            await eventually(item_opened, what="the replayed ledger entry's automatic item")
            discarded = await dlq(env, "discard", "rectification", bad_id, "--by", "运维员乙",
                                  "--why", "格式错误的测试消息")
            assert discarded.exit_code == 0, discarded.output
            assert (await dlq(env, "list", "rectification")).stdout.startswith(
                "rectification: 0 dead letter(s)")
    finally:
        await rect.delete_rectification_bus_objects(unique_prefix)
    decisions = await fetch(database, "SELECT event_type FROM es.events WHERE category = 'deadletter'"
                                      " ORDER BY stream_id, stream_version")
    assert sorted(r["event_type"] for r in decisions) == ["deadletter.Discarded", "deadletter.Replayed"]
