"""On real RabbitMQ: registry events reach the inspection service through the registry's relay,
and the findings of a visit reach a rectification-side consumer exactly once, even when the same
message is delivered twice.

The registry here is a stand-in process (its events and the shell's relay, no routes), so this
test does not depend on the registry's API; the rectification side is a small test consumer
("rectification.on-inspection-test"), the real one being wired separately.
"""
from __future__ import annotations

import json
from contextlib import AsyncExitStack

import aio_pika
import asyncpg
import pytest

from services.inspection.app import create_app
from services.inspection.events import CONTRACT as INSPECTION_CONTRACT
from services.inspection.events import FindingRecorded
from services.registry.events import CONTRACT as REGISTRY_CONTRACT
from shared.consuming import ConsumerSpec, HandlerContext
from shared.envelope import Delivery
from shared.messages import EventContract, RecordedEvent, new_event
from shared.provisioning import service_role
from shared.service import ServiceSpec, create_service_app
from tests.inspection import support as s
from tests.inspection.support import INSPECTOR
from tests.inspection.world import DRAW_ID, FROZEN_AT, VISIT_DAY
from tests.support.broker import publish_as
from tests.support.databases import execute, fetch, fetchval, pool_as
from tests.support.polling import eventually
from tests.support.services import AMQP_URL, SERVICE_POOL_SIZE, running, service_settings
from tests.support.services import delete_bus_objects as delete_service_bus_objects

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TEST_CONSUMER = "rectification.on-inspection-test"
SEEN_TABLE = """
CREATE TABLE public.findings_seen (
    event_id uuid PRIMARY KEY, finding_id text NOT NULL, unit text NOT NULL, text text NOT NULL);
GRANT SELECT, INSERT ON public.findings_seen TO lookback_rectification;
"""


async def record_finding(ctx: HandlerContext, event: FindingRecorded) -> None:
    await ctx.conn.execute(
        "INSERT INTO public.findings_seen (event_id, finding_id, unit, text) VALUES ($1, $2, $3, $4)",
        ctx.delivery.event_id, event.finding_id, event.unit, event.text)


REGISTRY_STANDIN = ServiceSpec(contract=REGISTRY_CONTRACT,
                               description="registry stand-in: relay only")
RECTIFICATION_SIDE = ServiceSpec(
    contract=EventContract(service="rectification", categories=(), events=()),
    description="test consumer of inspection findings",
    consumers=[ConsumerSpec(name=TEST_CONSUMER, source=INSPECTION_CONTRACT,
                            reactions={FindingRecorded: record_finding})])


async def delete_bus_objects(prefix: str) -> None:
    await delete_service_bus_objects(prefix, services=("registry", "inspection", "rectification"),
                                     consumers=(TEST_CONSUMER, "inspection.on-registry"))


async def _seen(dsn: str) -> list[asyncpg.Record]:
    return await fetch(dsn, "SELECT finding_id, unit, text FROM public.findings_seen ORDER BY text")


async def test_findings_reach_the_rectification_side_once_even_when_delivered_twice(
        database, unique_prefix, tmp_path):
    await execute(database, SEEN_TABLE)
    clock = s.inspection_clock()
    bus = dict(amqp_url=AMQP_URL, prefix=unique_prefix)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_bus_objects, unique_prefix)
        registry_app = create_service_app(REGISTRY_STANDIN, service_settings(database, tmp_path, **bus))
        rectification_pool = await stack.enter_async_context(
            pool_as(database, "rectification", max_size=SERVICE_POOL_SIZE))
        rectification_app = create_service_app(
            RECTIFICATION_SIDE, service_settings(database, tmp_path, run_sequencer=False, **bus),
            pool=rectification_pool)
        inspection_app = create_app(service_settings(database, tmp_path, run_sequencer=False, **bus),
                                    clock=clock)
        await stack.enter_async_context(running(registry_app))
        rectification = await stack.enter_async_context(running(rectification_app))
        inspection = await stack.enter_async_context(running(inspection_app))

        # Registry events, appended by the registry's role, relayed by the registry process.
        store = registry_app.state.runtime.store
        await store.append([new_event(s.stream_of(e), e, actor=s.REGISTRY_ACTOR,
                                      occurred_at=FROZEN_AT) for e in s.registry_world()])
        await eventually(lambda: s.view_has(inspection, s.PROJECT_COUNT), timeout=30,
                         what="the registry view over RabbitMQ")

        summary = await s.drawn(inspection, clock)
        canteen = s.stratum(summary, "echeng/canteen")["picks"][0]
        base = {"draw_id": DRAW_ID, "visit_id": "v-1"}
        response = await inspection.post(f"/draws/{DRAW_ID}/visits", headers=INSPECTOR, json={
            **base, "target_kind": "project", "target_id": canteen,
            "scheduled_for": VISIT_DAY.isoformat(), "inspector_ids": ["insp-1"]})
        assert response.status_code == 201, response.text
        checklist = {item: "no" for item in (
            "services_three_plus", "meal_assistance", "operator_in_place", "safety_facilities",
            "service_records")}
        response = await inspection.post(f"/draws/{DRAW_ID}/visits/v-1/record", headers=INSPECTOR,
                                         json={**base, "outcome": "problems_found",
                                               "visited_on": VISIT_DAY.isoformat(),
                                               "inspector_ids": ["insp-1"], "checklist": checklist,
                                               "findings": [{"text": "A 助餐未开展",
                                                             "deadline": "2024-05-24"},
                                                            {"text": "B 消防器材过期",
                                                             "deadline": "2024-05-17"}]})
        assert response.status_code == 200, response.text

        async def both_seen():
            rows = await _seen(database)
            return rows if len(rows) == 2 else False

        rows = await eventually(both_seen, timeout=30, what="two findings on the rectification side")
        assert [(r["unit"], r["text"]) for r in rows] == [("echeng", "A 助餐未开展"),
                                                          ("echeng", "B 消防器材过期")]

        # The same FindingRecorded message, as the relay published it (as inspection's broker
        # user), delivered twice more.
        recorded = await _finding_events(database)
        message = Delivery.from_recorded(recorded[0], source="inspection").outgoing()
        await publish_as(service_role("inspection"), f"{unique_prefix}inspection.events",
                         message.body, routing_key=message.event_type, headers=message.headers,
                         message_id=message.event_id, times=2)

        async def duplicates_handled():
            text = (await rectification.get("/metrics")).text
            line = (f'lookback_messages_handled_total{{consumer="{TEST_CONSUMER}",'
                    f'outcome="duplicate"}} 2.0')
            return line in text

        await eventually(duplicates_handled, timeout=30, what="both duplicates acknowledged")
        assert len(await _seen(database)) == 2
        inbox = await fetchval(database, "SELECT count(*) FROM es.inbox WHERE consumer = $1 "
                                           "AND event_id = $2", TEST_CONSUMER, recorded[0].event_id)
        assert inbox == 1
        # Nothing was dead-lettered on the way.
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for service in ("inspection", "rectification"):
                dlq = await channel.declare_queue(f"{unique_prefix}{service}.dlq", passive=True)
                assert dlq.declaration_result.message_count == 0, service


async def _finding_events(dsn: str) -> list[RecordedEvent]:
    rows = await fetch(dsn, """SELECT e.stream_id, e.stream_version, e.event_id, e.event_type,
                                        e.schema_version, e.payload, e.metadata, l.global_position
                                   FROM es.events e JOIN es.ledger l USING (event_id)
                                  WHERE e.event_type = 'inspection.FindingRecorded'
                                  ORDER BY e.stream_version""")
    return [RecordedEvent(stream_id=r["stream_id"], stream_version=r["stream_version"],
                          event_id=r["event_id"], event_type=r["event_type"],
                          schema_version=r["schema_version"], payload=json.loads(r["payload"]),
                          metadata=json.loads(r["metadata"]), global_position=r["global_position"])
            for r in rows]

