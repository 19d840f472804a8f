"""The notifier's routes on a real database: the .ics, who sees which unit, the contact directory,
the simulated clock, and its AsyncAPI document."""
from __future__ import annotations

from datetime import date

import httpx
import pytest
from icalendar import Calendar
from structlog.testing import capture_logs

from services.notifier.app import create_app
from services.notifier.events import CONTRACT
from services.notifier.subscribers import CONSUMERS
from shared.clock import SimulatedClock
from shared.settings import Settings
from tests.notifier.campaign import ITEM_A, extended, problem
from tests.notifier.support import Upstream, at, notifier, notifier_settings, wait_settled
from tests.support.actors import auth
from tests.support.databases import fetch
from tests.support.polling import eventually
from tests.support.services import running, service_settings

SECRET_EMAIL = "chen.weiguo@ezhou-echeng.gov.cn"
SECRET_KEY = "5e1f0c7a-secret-robot-key"


def _events(ics: bytes) -> dict[str, tuple[date, int, str]]:
    calendar = Calendar.from_ical(ics)
    return {str(e["UID"]): (e.decoded("DTSTART"), int(e.get("SEQUENCE", 0)), str(e["SUMMARY"]))
            for e in calendar.walk("VEVENT")}


@pytest.mark.integration
async def test_a_units_ics_lists_its_due_dates_with_uids_a_re_download_keeps(database, tmp_path):
    clock = SimulatedClock(at(3, 20, 10))
    upstream = Upstream(database)
    try:
        async with notifier(database, tmp_path, clock, notifier_settings(None)) as client:
            await upstream.append(*problem(ITEM_A, "echeng", 1, date(2024, 4, 8), at(3, 20, 10)),
                                  occurred_at=at(3, 20, 10))
            await wait_settled(database, upstream.appended)
            first = await client.get("/calendar/echeng.ics", headers=auth("rep-echeng-1"))
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/calendar")

            clock.set(at(3, 25, 11))
            await upstream.append(*extended(ITEM_A, "echeng", date(2024, 4, 8), date(2024, 4, 20)),
                                  occurred_at=at(3, 25, 11))
            await wait_settled(database, upstream.appended)
            second = await client.get("/calendar/echeng.ics", headers=auth("admin-1"))
            other = await client.get("/calendar/huarong.ics", headers=auth("rep-echeng-1"))
            unknown = await client.get("/calendar/wuhan.ics", headers=auth("admin-1"))
    finally:
        await upstream.close()

    before, after = _events(first.content), _events(second.content)
    item_uid = f"problem:{ITEM_A}@ezhou-2024.lookback"
    assert set(before) == set(after)                     # the same events, not new ones
    assert len(before) == 8                              # 7 campaign deadlines and the item
    assert {when for when, _, _ in before.values()} >= {
        date(2024, 3, 6), date(2024, 3, 25), date(2024, 4, 25), date(2024, 5, 7),
        date(2024, 5, 31)}
    assert before["deadline:echeng:monthly_list_2024_03@ezhou-2024.lookback"][2] == \
        "3月问题整改清单(附件2)"
    assert before[item_uid][:2] == (date(2024, 4, 8), 0)
    assert after[item_uid][:2] == (date(2024, 4, 20), 1)  # moved, SEQUENCE raised, same UID
    assert other.status_code == 403 and unknown.status_code == 404


@pytest.mark.integration
async def test_a_district_role_sees_only_its_own_units_calendar_and_reminders(database, tmp_path):
    clock = SimulatedClock(at(3, 4, 8))
    async with notifier(database, tmp_path, clock, notifier_settings(None)) as client:
        own = await client.get("/calendar", headers=auth("rep-echeng-1"))
        asked = await client.get("/calendar?unit=echeng", headers=auth("rep-echeng-1"))
        other = await client.get("/reminders?unit=huarong", headers=auth("rep-echeng-1"))
        everyone = await client.get("/calendar", headers=auth("leader-1"))
        unknown = await client.get("/calendar?unit=wuhan", headers=auth("admin-1"))
        anonymous = await client.get("/calendar")
    assert {o["unit"] for o in own.json()["obligations"]} == {"echeng"}
    assert asked.json()["obligations"] == own.json()["obligations"]
    assert other.status_code == 403
    assert {o["unit"] for o in everyone.json()["obligations"]} == {
        "echeng", "huarong", "liangzihu", "gedian", "linkong"}
    assert unknown.status_code == 422 and anonymous.status_code == 401
    monthly = next(o for o in own.json()["obligations"]
                   if o["obligation_id"] == "deadline:echeng:monthly_list_2024_03")
    assert [(r["at"][:16], r["status"]) for r in monthly["reminders"][:3]] == [
        ("2024-03-20T09:00", "scheduled"), ("2024-03-22T09:00", "scheduled"),
        ("2024-03-25T09:00", "scheduled")]
    work_plan = next(o for o in own.json()["obligations"] if o["kind"] == "work_plan")
    assert work_plan["reminded"] is False and work_plan["reminders"] == []


@pytest.mark.integration
async def test_city_admin_sets_and_erases_contacts_and_no_address_reaches_events_or_logs(
        database, tmp_path):
    clock = SimulatedClock(at(3, 4, 8))
    body = {"email": SECRET_EMAIL,
            "webhook_url": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={SECRET_KEY}",
            "webhook_format": "wecom"}
    with capture_logs() as logs:
        async with notifier(database, tmp_path, clock, notifier_settings(None)) as client:
            await eventually(lambda: _loaded(client), what="the example contacts")
            reporter = await client.put("/contacts/echeng/liaison", json=body,
                                        headers=auth("rep-echeng-1"))
            bad = await client.put("/contacts/echeng/liaison", headers=auth("admin-1"),
                                   json={"email": "not-an-address", "webhook_format": "wecom"})
            unknown_unit = await client.put("/contacts/wuhan/liaison", json=body,
                                            headers=auth("admin-1"))
            after_refusals = (await client.get("/contacts?unit=echeng", headers=auth("admin-1"))).json()
            put = await client.put("/contacts/echeng/liaison", json=body, headers=auth("admin-1"))
            listed = (await client.get("/contacts?unit=echeng", headers=auth("admin-1"))).json()
            erased = await client.delete("/contacts/echeng/liaison", headers=auth("admin-1"))
            again = await client.delete("/contacts/echeng/liaison", headers=auth("admin-1"))
            remaining = await fetch(database, "SELECT count(*) FROM notifier.contacts "
                                              "WHERE unit = 'echeng' AND audience = 'liaison'")
    assert reporter.status_code == 403
    assert bad.status_code == 422 and "not-an-address" not in bad.text
    assert unknown_unit.status_code == 422
    # Refused commands changed nothing: the example address filled at start is still there.
    assert [c["email"] for c in after_refusals["items"] if c["audience"] == "liaison"] == [
        "li***@example.invalid"]
    assert put.status_code == 200
    assert put.json() == {"unit": "echeng", "audience": "liaison", "email": "ch***@ezhou-echeng.gov.cn",
                          "webhook": "https://qyapi.weixin.qq.com/***"}
    liaison = next(c for c in listed["items"] if c["audience"] == "liaison")
    assert (liaison["email"], liaison["source"], liaison["webhook_format"]) == (
        "ch***@ezhou-echeng.gov.cn", "api", "wecom")
    assert erased.status_code == 204 and again.status_code == 404 and remaining[0][0] == 0
    events = await fetch(database, "SELECT event_type, payload::text AS payload FROM es.events "
                                   "WHERE stream_id = 'notice-contacts.echeng' ORDER BY stream_version")
    assert [e["event_type"] for e in events] == ["notifier.ContactSet", "notifier.ContactErased"]
    everything = " ".join(e["payload"] for e in events) + repr(logs)
    assert SECRET_EMAIL not in everything and SECRET_KEY not in everything


async def _loaded(client: httpx.AsyncClient) -> bool:
    listed = (await client.get("/contacts", headers=auth("admin-1"))).json()["items"]
    return len(listed) == 10   # every unit's liaison and leader, filled in at start


@pytest.mark.integration
async def test_the_simulated_clock_moves_forward_only_for_city_admin(database, tmp_path):
    clock = SimulatedClock(at(3, 10, 9))
    async with notifier(database, tmp_path, clock, notifier_settings(None)) as client:
        back = await client.post("/clock", json={"now": at(3, 9).isoformat()}, headers=auth("admin-1"))
        leader = await client.post("/clock", json={"now": at(3, 11).isoformat()},
                                   headers=auth("leader-1"))
        forward = await client.post("/clock", json={"now": at(3, 11).isoformat()},
                                    headers=auth("admin-1"))
        read = await client.get("/clock", headers=auth("leader-1"))
    assert back.status_code == 409 and leader.status_code == 403
    assert forward.json() == {"now": "2024-03-11T09:00:00+08:00", "simulated": True}
    assert read.json()["now"] == "2024-03-11T09:00:00+08:00"
    assert clock() == at(3, 11)


@pytest.mark.integration
async def test_a_notifier_on_the_real_clock_cannot_be_moved(database, tmp_path):
    app = create_app(service_settings(database, tmp_path), notifier_settings=notifier_settings(None))
    async with running(app) as client:
        moved = await client.post("/clock", json={"now": at(3, 11).isoformat()},
                                  headers=auth("admin-1"))
        read = await client.get("/clock", headers=auth("admin-1"))
    assert moved.status_code == 404 and read.json()["simulated"] is False


@pytest.mark.unit
async def test_the_asyncapi_document_lists_what_the_notifier_consumes_and_publishes():
    app = create_app(Settings(database_url="postgresql://unused/none"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        document = (await client.get("/asyncapi.json")).json()
    channels = document["channels"]
    for consumer in CONSUMERS:  # every routing key its queue is bound with
        bindings = channels[consumer.name]["bindings"]["amqp"]["x-lookback-bindings"]
        assert [b["routingKey"] for b in bindings] == consumer.event_types
        assert {b["exchange"] for b in bindings} == {f"{consumer.producer}.events"}
    on_registry = channels["notifier.on-registry"]["messages"]
    on_inspection = channels["notifier.on-inspection"]["messages"]
    assert "registry.LiaisonRegistered" in on_registry
    assert "inspection.VisitScheduled" in on_inspection
    operations = document["operations"]
    sent = [op for op in operations.values() if op["action"] == "send"
            and op["channel"]["$ref"].startswith("#/channels/notifier.events.")]
    published = {channels[op["channel"]["$ref"].removeprefix("#/channels/")]["address"] for op in sent}
    assert published == {cls.type_name for cls in CONTRACT.events}
    assert {operations[f"receive.{c.name}"]["action"] for c in CONSUMERS} == {"receive"}
