"""The reminder calendar, pure: working-day offsets, holiday shifts, 催办 and 督办, statuses."""
from __future__ import annotations

import tomllib
import uuid
from datetime import date, datetime, time, timedelta

import chinese_calendar
import pytest

from services.notifier.domain import obligations as ob
from services.notifier.domain.calendar import ReminderStatus, next_moment, plan, reminder_id_for, status_of
from services.notifier.events import (
    ObligationFulfilled,
    ObligationKind,
    ObligationOpened,
    ObligationReturned,
    ReminderKind,
    SourceRef,
)
from shared.campaign import DEFAULT_CAMPAIGN_FILE, load_campaign, parse_campaign

pytestmark = pytest.mark.unit

CAMPAIGN = load_campaign()
TZ = CAMPAIGN.tz


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=TZ)


def source(version: int) -> SourceRef:
    return SourceRef(event_type="test.Fact", event_id=uuid.uuid4(), stream_id="x-1",
                     stream_version=version)


def problem(due: date, *, opened: datetime | None = None) -> ob.ObligationState:
    opened = opened or at(3, 10)
    state = ob.initial_state("problem:p-1", CAMPAIGN)
    return ob.evolve_obligation(state, ObligationOpened(
        obligation_id="problem:p-1", unit="echeng", kind=ObligationKind.PROBLEM,
        title="问题整改(序号1 示例)", due_on=due, opened_at=opened, source=source(1)))


def deadline(code: str, unit: str = "echeng") -> ob.ObligationState:
    return ob.initial_state(ob.deadline_obligation_id(unit, code), CAMPAIGN)


def moments(state: ob.ObligationState, kind: ReminderKind | None = None,
            until: date = date(2024, 5, 31)) -> list[str]:
    return [r.at.strftime("%m-%d %H:%M") for r in plan(state, CAMPAIGN)
            if (kind is None or r.kind is kind) and r.at.date() <= until]


def test_the_campaign_file_holidays_agree_with_the_official_chinese_calendar():
    """The campaign file is the record; chinese-calendar (国务院办公厅 notices) checks it."""
    day = CAMPAIGN.campaign.starts_on
    disagreements = []
    while day <= CAMPAIGN.campaign.ends_on:
        if CAMPAIGN.is_working_day(day) != chinese_calendar.is_workday(day):
            disagreements.append(day.isoformat())
        day += timedelta(days=1)
    assert disagreements == []
    assert all(chinese_calendar.is_holiday(d) for d in CAMPAIGN.calendar.holidays)
    assert all(chinese_calendar.is_workday(d) and d.weekday() >= 5
               for d in CAMPAIGN.calendar.make_up_working_days)


def test_monthly_lists_are_reminded_three_one_and_zero_working_days_before():
    assert moments(deadline("monthly_list_2024_03"), ReminderKind.REMINDER) == [
        "03-20 09:00", "03-22 09:00", "03-25 09:00"]
    assert moments(deadline("monthly_list_2024_04"), ReminderKind.REMINDER) == [
        "04-22 09:00", "04-24 09:00", "04-25 09:00"]


def test_the_may_day_holiday_moves_the_self_inspection_reminder_before_it():
    """05-07's T-3 skips 5月1日至5月5日: it is 04-29, not 05-02 (and 04-28, a Sunday worked, is T-4)."""
    state = deadline("self_inspection_report")
    assert moments(state, ReminderKind.REMINDER) == ["04-29 09:00", "05-06 09:00", "05-07 09:00"]
    first = plan(state, CAMPAIGN)[0]
    assert "5月1日至5月5日" in first.why and first.offsets == (3,)


def test_a_due_date_on_a_holiday_is_reminded_on_the_working_day_before_and_never_moves():
    state = problem(date(2024, 4, 5))
    before = [r for r in plan(state, CAMPAIGN) if r.kind is ReminderKind.REMINDER]
    assert [(r.at.strftime("%m-%d"), r.offsets) for r in before] == [
        ("03-29", (3,)), ("04-02", (1,)), ("04-03", (0,))]
    assert all(r.due_on == date(2024, 4, 5) for r in before)
    assert "4月5日为节假日" in before[-1].why
    # The first overdue working day after the Qingming holiday is Sunday 04-07, a make-up day.
    assert moments(state, ReminderKind.URGING, until=date(2024, 4, 9)) == [
        "04-07 09:00", "04-08 09:00", "04-09 09:00"]
    assert "调休工作日" in plan(state, CAMPAIGN)[3].why


def test_make_up_working_days_carry_reminders():
    assert moments(problem(date(2024, 4, 8)), ReminderKind.REMINDER) == [
        "04-02 09:00", "04-07 09:00", "04-08 09:00"]        # Sunday 04-07 is T-1
    assert moments(problem(date(2024, 5, 13), opened=at(5, 8)), ReminderKind.REMINDER) == [
        "05-09 09:00", "05-11 09:00", "05-13 09:00"]        # Saturday 05-11 is T-1


def test_overdue_days_are_working_days_and_the_leader_hears_once_on_day_n():
    custom = tomllib.loads(DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8"))
    custom["reminders"].update(overdue_every_days=2, escalate_after_overdue_days=3)
    campaign = parse_campaign(custom)
    state = ob.initial_state(ob.deadline_obligation_id("echeng", "monthly_list_2024_03"), campaign)
    after = [(r.at.strftime("%m-%d"), r.kind.value, r.overdue_day) for r in plan(state, campaign)
             if r.kind is not ReminderKind.REMINDER and r.at.date() <= date(2024, 4, 3)]
    assert after == [("03-26", "urging", 1), ("03-28", "escalation", 3), ("03-28", "urging", 3),
                     ("04-01", "urging", 5), ("04-03", "urging", 7)]


def test_nothing_is_scheduled_before_the_campaign_or_after_it_ends():
    liaisons = deadline("liaisons")   # due 03-06: its T-3 (03-01) is before the campaign
    assert moments(liaisons, ReminderKind.REMINDER) == ["03-05 09:00", "03-06 09:00"]
    typical = deadline("typical_case")   # due 05-31, the campaign's last day
    assert [r.kind for r in plan(typical, CAMPAIGN)] == [ReminderKind.REMINDER] * 3
    late = problem(date(2024, 6, 20), opened=at(5, 20))
    assert plan(late, CAMPAIGN) == ()


def test_the_work_plan_and_rectification_complete_are_shown_but_never_reminded():
    assert plan(deadline("work_plan"), CAMPAIGN) == ()
    assert plan(deadline("rectification_complete"), CAMPAIGN) == ()


def test_a_reminder_id_is_the_same_wherever_and_whenever_it_is_computed():
    state = deadline("monthly_list_2024_03")
    first = plan(state, CAMPAIGN)[0]
    assert first.reminder_id == reminder_id_for(state.obligation_id, ReminderKind.REMINDER,
                                                at(3, 20))
    assert first.reminder_id == plan(deadline("monthly_list_2024_03"), CAMPAIGN)[0].reminder_id
    assert first.reminder_id != plan(deadline("monthly_list_2024_03", "huarong"), CAMPAIGN)[0] \
        .reminder_id


def test_statuses_follow_the_clock_the_fulfilment_and_a_return():
    state = deadline("monthly_list_2024_03")
    t3, t1, t0 = plan(state, CAMPAIGN)[:3]
    assert status_of(t3, state, None, at(3, 19), CAMPAIGN) is ReminderStatus.SCHEDULED
    assert status_of(t3, state, None, at(3, 20, 9, 0), CAMPAIGN) is ReminderStatus.DUE
    assert status_of(t3, state, None, at(3, 21), CAMPAIGN) is ReminderStatus.MISSED
    assert status_of(t3, state, ReminderStatus.SENT, at(3, 21), CAMPAIGN) is ReminderStatus.SENT
    submitted = ob.evolve_obligation(state, ObligationFulfilled(
        obligation_id=state.obligation_id, unit="echeng", part="r-1", fulfilled_at=at(3, 21, 10),
        how="submitted", source=source(1)))
    assert status_of(t1, submitted, None, at(3, 22), CAMPAIGN) is ReminderStatus.CANCELLED
    returned = ob.evolve_obligation(submitted, ObligationReturned(
        obligation_id=state.obligation_id, unit="echeng", part="r-1", returned_at=at(3, 22, 11),
        reason="退回", source=source(2)))
    assert returned.armed_since == at(3, 22, 11)
    # The 09:00 reminder of the return's own day came while it was fulfilled: never sent late.
    assert status_of(t1, returned, None, at(3, 22, 12), CAMPAIGN) is ReminderStatus.SKIPPED
    assert status_of(t0, returned, None, at(3, 25, 9), CAMPAIGN) is ReminderStatus.DUE


def test_the_scheduler_sleeps_until_the_next_reminder_of_an_open_obligation():
    states = [deadline("monthly_list_2024_03"), deadline("liaisons")]
    assert next_moment(states, at(3, 4, 0), CAMPAIGN) == at(3, 5, 9)
    assert next_moment(states, at(3, 5, 9), CAMPAIGN) == at(3, 6, 9)
    assert next_moment(states, datetime.combine(date(2024, 6, 1), time(0), TZ), CAMPAIGN) is None
