"""Items other services' events open: a registry ledger entry (source = ledger), an inspection
finding (source = city). Exactly once under duplicate delivery, on real RabbitMQ (the same message
published twice with aio-pika) and on the local transport."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services.rectification import domain as d
from tests.rectification.api_support import (
    REGISTRY_ACTOR,
    close,
    delete_rectification_bus_objects,
    finding,
    known_projects,
    ledger_entry,
    other_services,
    problem,
    rectification,
    start,
)
from tests.support.actors import auth
from tests.support.broker import deliver_as_producer
from tests.support.clock import Clock, at
from tests.support.polling import eventually
from tests.support.services import AMQP_URL

pytestmark = pytest.mark.integration


async def items(api, **query) -> list[dict]:
    response = await api.get("/problems", params=query, headers=auth("admin-1"))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def count_items(api, n: int) -> list[dict]:
    async def enough() -> list[dict] | None:
        found = await items(api)
        return found if len(found) >= n else None

    return await eventually(enough, what=f"{n} problem items")


async def test_a_duplicated_ledger_entry_and_finding_open_one_item_each_over_rabbitmq(
        database, tmp_path, unique_prefix):
    clock = Clock(at(2024, 5, 10))
    try:
        async with rectification(database, tmp_path, clock, amqp_url=AMQP_URL,
                                 prefix=unique_prefix) as api:
            # Each event as its producer appended it, published twice as a redelivery would
            # (with its relay's own, if it ran, a third time: consumers act on the ledger's).
            ledger_event = await deliver_as_producer(
                database, unique_prefix, "registry", "project-p-huarong-1",
                ledger_entry("p-huarong-1", "huarong", "entry-1", reason="underperforming"),
                actor=REGISTRY_ACTOR, occurred_at=at(2024, 3, 12, 10), times=2)
            finding_event = await deliver_as_producer(
                database, unique_prefix, "inspection", "visit-visit-f-1",
                finding("p-echeng-1", "echeng", "finding-1", deadline=at(2024, 5, 30).date()),
                actor=REGISTRY_ACTOR, occurred_at=at(2024, 3, 12, 10), times=2)
            found = await count_items(api, 2)
            await asyncio.sleep(0.5)  # a second item, if any, would be there by now
            found = await items(api)
            assert len(found) == 2
            by_source = {item["source"]: item for item in found}
            ledger_item, city_item = by_source["ledger"], by_source["city"]
            assert ledger_item["problem_id"] == str(d.ledger_problem_id("entry-1"))
            assert (ledger_item["unit"], ledger_item["seq_no"], ledger_item["deadline"]) == (
                "huarong", 1, "2024-05-17")  # listed after 05-07: 立行立改
            assert ledger_item["description"] == (
                "列入台账：项目运营不佳,作用发挥不够（专业养老服务不足3项；未开展助餐服务）")
            assert city_item["problem_id"] == str(d.finding_problem_id("finding-1"))
            assert (city_item["unit"], city_item["deadline"], city_item["project_name"]) == (
                "echeng", "2024-05-30", "凤凰街道幸福食堂1(示例)")
            # The view of projects is a projection of its own (queue "rectification.registry-view"),
            # beside the reaction that opened the item: wait for it as for any read model.
            await known_projects(api, "p-huarong-1")
            conn = await asyncpg.connect(database)
            try:
                inbox = await conn.fetch("SELECT consumer, event_id FROM es.inbox WHERE event_id = "
                                         "ANY($1)", [ledger_event, finding_event])
                registered = await conn.fetchval(
                    "SELECT count(*) FROM es.events WHERE event_type = 'rectification.ProblemRegistered'")
            finally:
                await conn.close()
            assert sorted(r["consumer"] for r in inbox) == ["rectification.on-inspection",
                                                            "rectification.on-registry",
                                                            "rectification.registry-view"]
            assert registered == 2
            view = (await api.get("/projects", headers=auth("admin-1"))).json()["projects"]
            assert [(p["project_id"], p["on_ledger"], p["ledger_reason"]) for p in view] == [
                ("p-huarong-1", True, "underperforming")]
    finally:
        await delete_rectification_bus_objects(unique_prefix)


async def test_a_ledger_entry_opens_no_second_item_while_one_is_open_for_the_same_reason(
        database, tmp_path):
    clock = Clock(at(2024, 3, 12))
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await others.ledger_entry(project_id, "echeng", "entry-1", "not_operating")
        [first] = await count_items(api, 1)
        assert (first["source"], first["deadline"], first["ledger_reason"]) == (
            "ledger", "2024-05-07", "not_operating")
        await others.ledger_entry(project_id, "echeng", "entry-2", "not_operating")
        await others.ledger_entry(project_id, "echeng", "entry-3", "underperforming")
        found = await count_items(api, 2)
        await asyncio.sleep(0.3)
        found = await items(api)
        assert sorted((i["ledger_reason"], i["seq_no"]) for i in found) == [
            ("not_operating", 1), ("underperforming", 2)]
        # The ledger item is district-found: the unit works it, its reviewer verifies it.
        pid = first["problem_id"]
        await start(api, "rep-echeng-1", pid)
        await close(api, pid, "rep-echeng-1", "rev-echeng-1")
        await problem(api, pid, version=4)
        await others.ledger_entry(project_id, "echeng", "entry-4", "not_operating")
        found = await count_items(api, 3)
        assert sorted(i["ledger_reason"] for i in found) == [
            "not_operating", "not_operating", "underperforming"]
        conn = await asyncpg.connect(database)
        try:
            links = await conn.fetch("SELECT entry_id, problem_id, blocked_by FROM "
                                     "rectification.ledger_links ORDER BY entry_id")
        finally:
            await conn.close()
        assert [(r["entry_id"], r["problem_id"] is not None) for r in links] == [
            ("entry-1", True), ("entry-2", False), ("entry-3", True), ("entry-4", True)]
        assert links[1]["blocked_by"] == [uuid.UUID(pid)]


async def test_a_finding_for_a_project_in_another_unit_is_rejected_not_dead_lettered(
        database, tmp_path):
    clock = Clock(at(2024, 5, 10))
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        await others.finding(finding(project_id, "huarong", "finding-wrong-unit"))
        await others.finding(finding(project_id, "echeng", "finding-ok"))
        [item] = await count_items(api, 1)
        assert item["source_ref"] == "finding-ok"
        await asyncio.sleep(0.2)
        assert len(await items(api)) == 1
