"""Delivering reminders for real: retries and failures, webhooks, the mail folder, a restart, and
a claim left behind by a stopped instance."""
from __future__ import annotations

import tomllib
import uuid
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from services.notifier.app import create_app
from services.notifier.domain import obligations as ob
from services.notifier.domain.calendar import plan
from services.notifier.domain.reminders import message_id_for
from services.notifier.events import (
    Audience,
    Channel,
    ObligationKind,
    PlannedDelivery,
    ReminderClaimed,
    ReminderKind,
    reminder_stream,
)
from services.notifier.liveness import LOCK_CLASS, Liveness, _key
from shared.campaign import DEFAULT_CAMPAIGN_FILE, Campaign, parse_campaign
from shared.clock import SimulatedClock
from shared.messages import SYSTEM_ACTOR, new_event
from shared.store import NO_STREAM, PostgresEventStore, create_pool
from tests.faults import eventually
from tests.notifier.campaign import ITEM_A, problem
from tests.notifier.support import (
    CAMPAIGN,
    TZ,
    Upstream,
    as_,
    at,
    fetch,
    notifier,
    notifier_settings,
    service_settings,
    smtp_sink,
    wait_idle,
    wait_settled,
    webhook_sink,
)
from tests.shared.test_bus import running

pytestmark = pytest.mark.integration

UNITS = ("echeng", "gedian", "huarong", "liangzihu", "linkong")


def liaison(unit: str) -> str:
    return f"liaison.{unit}@example.invalid"


async def reminders_by_unit(client: httpx.AsyncClient) -> dict[tuple[str, str], dict[str, object]]:
    items = (await client.get("/reminders", headers=as_("admin"))).json()["items"]
    return {(item["unit"], item["channel"]): item for item in items}


def counter(metrics: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(line_start))


async def test_a_refused_send_is_retried_then_recorded_failed_visible_and_counted(database,
                                                                                 tmp_path):
    clock = SimulatedClock(at(3, 5, 8))
    with capture_logs() as logs:
        async with smtp_sink() as sink, notifier(database, tmp_path, clock,
                                                 notifier_settings(sink)) as client:
            sink.answers = {
                liaison("gedian"): ["451 4.3.0 mailbox busy"] * 3,      # every attempt
                liaison("huarong"): ["451 4.3.0 mailbox busy"],          # the first only
                liaison("linkong"): [f"550 5.1.1 <{liaison('linkong')}>: no such user"]}
            clock.set(at(3, 5, 9))
            await wait_idle(client)
            rows = await reminders_by_unit(client)
            calendar = (await client.get("/calendar?unit=gedian", headers=as_("admin"))).json()
            metrics = (await client.get("/metrics")).text
    assert sorted(r.message["To"] for r in sink.received) == [
        liaison(u) for u in ("echeng", "huarong", "liangzihu")]
    outcome = {unit: (rows[(unit, "email")]["outcome"], rows[(unit, "email")]["attempts"])
               for unit in UNITS}
    assert outcome == {"echeng": ("sent", 1), "gedian": ("failed", 3), "huarong": ("sent", 2),
                       "liangzihu": ("sent", 1), "linkong": ("failed", 1)}  # 5xx: not retried
    assert rows[("gedian", "email")]["reason"] == "SMTP 451: 4.3.0 mailbox busy"
    assert rows[("linkong", "email")]["reason"] == "SMTP 550: 5.1.1 <li***@example.invalid>: no such user"
    assert rows[("gedian", "email")]["recipient_masked"] == "li***@example.invalid"
    [liaisons] = [o for o in calendar["obligations"] if o["kind"] == "liaisons"]
    assert liaisons["reminders"][0]["status"] == "failed"
    assert counter(metrics, 'lookback_notifier_deliveries_total{channel="email",outcome="failed"}') == 2
    assert counter(metrics, 'lookback_notifier_deliveries_total{channel="email",outcome="sent"}') == 3
    failed = await fetch(database, "SELECT count(*) FROM es.events "
                                   "WHERE event_type = 'notifier.ReminderFailed'")
    assert failed[0][0] == 2
    assert "@example.invalid" not in repr([line for line in logs if "***" not in repr(line)])
    assert not any(liaison(u) in repr(logs) for u in UNITS)


async def test_webhooks_get_the_robot_text_format_and_a_robot_error_is_a_failure(database,
                                                                                tmp_path):
    clock = SimulatedClock(at(3, 5, 8))
    async with smtp_sink() as sink, webhook_sink() as robot:
        contacts = tmp_path / "contacts.toml"
        contacts.write_text(f"""
[[contacts]]
unit = "echeng"
audience = "liaison"
email = "liaison.echeng@example.invalid"
webhook_url = "{robot.url()}"
webhook_format = "wecom"

[[contacts]]
unit = "huarong"
audience = "liaison"
webhook_url = "{robot.url('refused-key')}"
webhook_format = "dingtalk"
""", encoding="utf-8")
        settings = notifier_settings(sink, contacts_file=contacts)
        async with notifier(database, tmp_path, clock, settings) as client:
            clock.set(at(3, 5, 9))
            await wait_idle(client)
            rows = await reminders_by_unit(client)
    echeng_posts = [p for p in robot.posts if "secret-robot-key" in p[0]]
    [(_, headers, payload)] = echeng_posts
    assert payload["msgtype"] == "text"
    assert payload["text"]["content"].startswith("【回头看提醒】鄂城区民政局：上报责任领导和联络员信息")
    assert "2024年3月6日" in payload["text"]["content"]
    assert uuid.UUID(headers["Idempotency-Key"]) == uuid.UUID(rows[("echeng", "webhook")]["reminder_id"])
    assert len([p for p in robot.posts if "refused-key" in p[0]]) == 3       # retried, then failed
    assert (rows[("echeng", "webhook")]["outcome"], rows[("echeng", "email")]["outcome"]) == (
        "sent", "sent")
    huarong = rows[("huarong", "webhook")]
    assert (huarong["outcome"], huarong["reason"], huarong["recipient_masked"]) == (
        "failed", "robot errcode 300001", "http://127.0.0.1/***")
    assert ("huarong", "email") not in rows                                  # it has no address
    assert liaison("huarong") not in [r.message["To"] for r in sink.received]


async def test_without_smtp_each_message_is_an_eml_file_in_the_mail_folder(database, tmp_path):
    clock = SimulatedClock(at(3, 5, 8))
    async with notifier(database, tmp_path, clock, notifier_settings(None)) as client:
        clock.set(at(3, 5, 9))
        await wait_idle(client)
        rows = await reminders_by_unit(client)
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 5 and {channel for _, channel in rows} == {"mail_folder"}
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["Subject"] == ("【回头看提醒】鄂城区民政局：上报责任领导和联络员信息(附件1)"
                                  "将于2024年3月6日到期")
    assert message["To"] == liaison("echeng")
    body = message.get_body().get_content()
    assert "尚缺" in body and "联络员信息(附件1)" in body and "2024年3月6日23:59" in body


async def test_a_restarted_notifier_sends_nothing_twice(database, tmp_path):
    async with smtp_sink() as sink:
        first_clock = SimulatedClock(at(3, 5, 8))
        async with notifier(database, tmp_path, first_clock, notifier_settings(sink)) as client:
            first_clock.set(at(3, 5, 9))
            await wait_idle(client)
        assert len(sink.received) == 5
        second_clock = SimulatedClock(at(3, 5, 9, 30))
        async with notifier(database, tmp_path, second_clock, notifier_settings(sink)) as client:
            await wait_idle(client)
            second_clock.set(at(3, 6, 9))     # the T-0 reminders: sent once, after the rest
            await wait_idle(client)
    ids = [r.message["X-Lookback-Reminder-Id"] for r in sink.received]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert sorted(r.summary[:2] for r in sink.received) == [("03-05", "09:00")] * 5 + [
        ("03-06", "09:00")] * 5


async def _claim_left_by(instance: str, unit: str, pool: asyncpg.Pool) -> ReminderClaimed:
    state = ob.initial_state(ob.deadline_obligation_id(unit, "liaisons"), CAMPAIGN)
    reminder = plan(state, CAMPAIGN)[0]
    claim = ReminderClaimed(
        reminder_id=reminder.reminder_id, obligation_id=state.obligation_id, unit=unit,
        obligation_kind=ObligationKind.LIAISONS, kind=ReminderKind.REMINDER,
        audience=Audience.LIAISON, scheduled_for=reminder.at, due_on=reminder.due_on, attempt=1,
        instance_id=instance,
        deliveries=(PlannedDelivery(channel=Channel.EMAIL, recipient_masked="li***@example.invalid"),),
        message_id=message_id_for(reminder.reminder_id, "lookback.example.invalid"),
        subject=f"({unit}) 先前实例写好的提醒", body="正文(示例)\n")
    stream = reminder_stream(reminder.reminder_id)
    await PostgresEventStore(pool).append(
        [new_event(stream, claim, actor=SYSTEM_ACTOR, occurred_at=at(3, 5, 9))], {stream: NO_STREAM})
    return claim


async def test_a_claim_left_by_a_stopped_instance_is_taken_over_and_a_live_ones_is_not(
        database, tmp_path):
    stopped, alive = uuid.uuid4().hex, uuid.uuid4().hex
    holder = await asyncpg.connect(database)
    pool = await create_pool(database, role="lookback_notifier", max_size=2)
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, _key(alive))
        clock = SimulatedClock(at(3, 5, 8))
        async with smtp_sink() as sink, notifier(database, tmp_path, clock,
                                                 notifier_settings(sink)) as client:
            left = await _claim_left_by(stopped, "echeng", pool)
            held = await _claim_left_by(alive, "huarong", pool)
            await wait_settled(database, [])
            clock.set(at(3, 5, 9))
            await eventually(lambda: len(sink.received) >= 4, what="four reminders")
            await wait_settled(database, [])

            async def declined_again() -> bool:     # passes every 0.5 s keep seeing it alive
                metrics = (await client.get("/metrics")).text
                return counter(metrics, 'lookback_commands_total{command="ClaimReminder",'
                                        'outcome="unchanged"') >= 4
            await eventually(declined_again, what="the live instance's claim to be left alone")
            before_release = sorted(r.message["To"] for r in sink.received)
            await holder.execute("SELECT pg_advisory_unlock_all()")
            await eventually(lambda: len(sink.received) == 5, what="the take-over after the stop")
            await wait_idle(client)
    finally:
        await holder.close()
        await pool.close()
    assert before_release == [liaison(u) for u in ("echeng", "gedian", "liangzihu", "linkong")]
    by_unit = {r.message["X-Lookback-Unit"]: r.message for r in sink.received}
    assert by_unit["echeng"]["Message-ID"].strip() == left.message_id    # the same message
    assert by_unit["echeng"]["Subject"] == left.subject
    assert by_unit["huarong"]["Message-ID"].strip() == held.message_id
    claims = await fetch(database, "SELECT payload->>'unit' AS unit, (payload->>'attempt')::int "
                                   "AS attempt FROM es.events WHERE event_type = $1 "
                                   "ORDER BY 1, 2", ReminderClaimed.type_name)
    assert [(r["unit"], r["attempt"]) for r in claims] == [
        ("echeng", 1), ("echeng", 2), ("gedian", 1), ("huarong", 1), ("huarong", 2),
        ("liangzihu", 1), ("linkong", 1)]


async def test_the_liveness_probe_sees_a_held_lock_and_a_free_one(database):
    instance = uuid.uuid4().hex
    holder = await asyncpg.connect(database)
    prober = await asyncpg.connect(database)
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, _key(instance))
        async with prober.transaction():
            assert await Liveness.is_gone(prober, instance) is False
        await holder.execute("SELECT pg_advisory_unlock_all()")
        async with prober.transaction():
            assert await Liveness.is_gone(prober, instance) is True
        async with prober.transaction():
            assert await Liveness.is_gone(prober, "not-an-instance-id") is True
    finally:
        await holder.close()
        await prober.close()


def campaign_around(send_at: datetime) -> Campaign:
    """The Ezhou file moved to today: every campaign deadline days away, items reminded on their
    due day at `send_at` (today made a working day whatever day it is)."""
    raw = tomllib.loads(DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8"))
    today = send_at.date()

    def day(offset: int) -> date:
        return today + timedelta(days=offset)

    raw["campaign"].update(starts_on=day(-1), ends_on=day(70), issued_on=day(-1))
    spans = {"mobilisation": (-1, 12), "self_inspection": (13, 40), "summary": (41, 70)}
    for phase in raw["phases"]:
        phase["starts_on"], phase["ends_on"] = (day(n) for n in spans[phase["code"]])
    due = {"mobilisation": 12, "self_inspection": 30, "summary": 60}
    for deadline in raw["deadlines"]:
        deadline["due_on"] = day(due[deadline["phase"]])
    raw["sampling"].update(inspection_starts_on=day(41), inspection_ends_on=day(70))
    raw["reminders"].update(send_at=send_at.time().replace(microsecond=0),
                            item_offsets_working_days=[0])
    raw["calendar"]["make_up_working_days"].append(today)
    return parse_campaign(raw)


async def test_on_the_real_clock_a_new_due_date_wakes_the_sleeping_scheduler(database, tmp_path):
    """The scheduler sleeps until the next reminder (days away here); an item due today must
    wake it: the projection's NOTIFY does, and the reminder goes out at its moment."""
    send_at = datetime.now(TZ).replace(microsecond=0) + timedelta(seconds=5)
    campaign = campaign_around(send_at)
    upstream = Upstream(database)
    try:
        async with smtp_sink() as sink:
            app = create_app(service_settings(database, tmp_path),
                             notifier_settings=notifier_settings(sink), campaign=campaign)
            async with running(app) as client:
                await eventually(lambda: _all_contacts(client), what="the scheduler to start")
                await upstream.append(*problem(ITEM_A, "echeng", 1, send_at.date(),
                                               send_at - timedelta(minutes=1)),
                                      occurred_at=send_at - timedelta(minutes=1))
                await eventually(lambda: sink.received, timeout=30, what="the item's reminder")
    finally:
        await upstream.close()
    [received] = sink.received
    assert received.message["X-Lookback-Obligation-Kind"] == "problem"
    assert received.message["To"] == liaison("echeng")
    assert datetime.fromisoformat(received.message["X-Lookback-Scheduled-For"]) == send_at


async def _all_contacts(client: httpx.AsyncClient) -> bool:
    return len((await client.get("/contacts", headers=as_("admin"))).json()["items"]) == 10
