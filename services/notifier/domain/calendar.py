"""The reminder calendar: which reminders an obligation has, when, why, and where each stands. Pure.

Everything comes from the campaign file: the due date's working-day offsets (per kind, or the
deadline's own override), the holidays and make-up working days, the send time, the overdue
rhythm and when to tell the leader. The rules, as decided (ADR 0006):

- **before the due date**: at `send_at` on each T-n working day (`working_days_before`), so a
  holiday moves a reminder to the previous working day, and never the deadline; two offsets that
  land on one day (a due date on a holiday) give one reminder. None before the campaign starts,
  none at or after the due moment itself.
- **overdue**: 催办 to the liaison on the first working day after the due date and then every
  `overdue_every_days` working days; 督办 to the leader once, on overdue working day
  `escalate_after_overdue_days` (0 and 1 both mean the first).
- **inside the campaign only**: nothing is scheduled after `campaign.ends_on`.
- **work plan and "all rectified"**: shown, never reminded: no event tells the notifier a work
  plan was filed, and the items are reminded one by one under their own 整改限期.

A reminder's id is derived from (obligation, kind, scheduled local time): every instance, every
restart computes the same id for the same reminder.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from services.notifier.domain.obligations import ObligationState, ObligationStatus, due_at
from services.notifier.events import Audience, ObligationKind, ReminderKind
from shared.campaign import Campaign
from shared.messages import deterministic_id

# Kinds whose fulfilment an event tells us: only those are reminded.
REMINDED_KINDS = frozenset({ObligationKind.LIAISONS, ObligationKind.MONTHLY_PROBLEM_LIST,
                            ObligationKind.SELF_INSPECTION_REPORT, ObligationKind.TYPICAL_CASE,
                            ObligationKind.PROBLEM, ObligationKind.VISIT})
# A visit is a notice, not a duty of the unit: nothing to urge.
URGED_KINDS = REMINDED_KINDS - {ObligationKind.VISIT}
NOT_REMINDED_WHY = {
    ObligationKind.WORK_PLAN: "不发提醒：没有事件报告工作计划已报送",
    ObligationKind.RECTIFICATION_COMPLETE: "不单独提醒：每项问题按其整改限期分别提醒",
}
AUDIENCE_OF = {ReminderKind.REMINDER: Audience.LIAISON, ReminderKind.URGING: Audience.LIAISON,
               ReminderKind.ESCALATION: Audience.LEADER}


class ReminderStatus(StrEnum):
    SCHEDULED = "scheduled"    # its moment is still to come
    DUE = "due"                # its moment has come: about to be claimed and sent
    CLAIMED = "claimed"        # an instance is sending it
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"    # the obligation was fulfilled or withdrawn
    SKIPPED = "skipped"        # its moment came before the obligation was known or re-armed
    MISSED = "missed"          # its day passed and nobody sent it (the notifier was down)


RECORDED = frozenset({ReminderStatus.CLAIMED, ReminderStatus.SENT, ReminderStatus.FAILED})


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    reminder_id: uuid.UUID
    obligation_id: str
    kind: ReminderKind
    audience: Audience
    at: datetime                      # aware, in the campaign's time zone
    due_on: date
    offsets: tuple[int, ...] = ()     # T-n working days (a reminder before the due date)
    overdue_day: int | None = None    # k-th overdue working day (催办, 督办)
    why: str = ""


def reminder_id_for(obligation_id: str, kind: ReminderKind, at: datetime) -> uuid.UUID:
    """(obligation, kind, scheduled local time) → the reminder's one id."""
    return deterministic_id("notifier", "reminder", obligation_id, kind.value,
                            at.replace(tzinfo=None).isoformat(timespec="minutes"))


def offsets_for(state: ObligationState, campaign: Campaign) -> tuple[int, ...]:
    reminders = campaign.reminders
    if state.kind is ObligationKind.PROBLEM:
        return reminders.item_offsets_working_days
    if state.kind is ObligationKind.VISIT:
        return reminders.visit_offsets_working_days
    if state.deadline_code is not None:
        override = campaign.deadline(state.deadline_code).reminder_offsets_working_days
        if override is not None:
            return override
    return reminders.offsets_working_days


def plan(state: ObligationState, campaign: Campaign) -> tuple[PlannedReminder, ...]:
    """Every reminder the obligation has (whatever its status), in time order."""
    if state.kind not in REMINDED_KINDS or state.due_on is None or not state.opened:
        return ()
    return tuple(sorted(_plan(state, state.due_on, campaign), key=lambda r: (r.at, r.kind)))


def _plan(state: ObligationState, due_on: date, campaign: Campaign) -> Iterator[PlannedReminder]:
    rules = campaign.reminders
    first, last = campaign.campaign.starts_on, campaign.campaign.ends_on
    deadline = due_at(state, campaign)
    assert deadline is not None
    by_day: dict[date, list[int]] = {}
    for offset in offsets_for(state, campaign):
        by_day.setdefault(campaign.working_days_before(due_on, offset), []).append(offset)
    for day, offsets in by_day.items():
        at = campaign.local_datetime(day, rules.send_at)
        if first <= day <= last and at < deadline:
            yield _reminder(state, ReminderKind.REMINDER, at, due_on, offsets=tuple(sorted(offsets)),
                            why=_before_why(campaign, state, day, due_on, offsets))
    if state.kind not in URGED_KINDS:
        return
    escalate_on = max(rules.escalate_after_overdue_days, 1)
    day, overdue = due_on, 0
    while True:
        day = campaign.working_day_on_or_after(day + timedelta(days=1))
        overdue += 1
        if day > last:
            return
        at = campaign.local_datetime(day, rules.send_at)
        if (overdue - 1) % rules.overdue_every_days == 0:
            yield _reminder(state, ReminderKind.URGING, at, due_on, overdue_day=overdue,
                            why=f"逾期第{overdue}个工作日催办{_day_note(campaign, day)}")
        if overdue == escalate_on:
            yield _reminder(state, ReminderKind.ESCALATION, at, due_on, overdue_day=overdue,
                            why=f"逾期第{overdue}个工作日仍未完成，报告责任领导"
                                f"{_day_note(campaign, day)}")


def _reminder(state: ObligationState, kind: ReminderKind, at: datetime, due_on: date, *,
              offsets: tuple[int, ...] = (), overdue_day: int | None = None,
              why: str) -> PlannedReminder:
    return PlannedReminder(reminder_id=reminder_id_for(state.obligation_id, kind, at),
                           obligation_id=state.obligation_id, kind=kind, audience=AUDIENCE_OF[kind],
                           at=at, due_on=due_on, offsets=offsets, overdue_day=overdue_day, why=why)


def cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _cn_short(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _ranges(days: Iterable[date]) -> list[str]:
    """Consecutive dates as ranges: 4月4日至4月6日, 5月1日至5月5日."""
    spans: list[list[date]] = []
    for day in sorted(days):
        if spans and day - spans[-1][-1] == timedelta(days=1):
            spans[-1].append(day)
        else:
            spans.append([day])
    return [_cn_short(s[0]) if len(s) == 1 else f"{_cn_short(s[0])}至{_cn_short(s[-1])}"
            for s in spans]


def _day_note(campaign: Campaign, day: date) -> str:
    return f"（{_cn_short(day)}为调休工作日）" if day.weekday() >= 5 else ""


def _before_why(campaign: Campaign, state: ObligationState, day: date, due_on: date,
                offsets: list[int]) -> str:
    what = "检查日" if state.kind is ObligationKind.VISIT else "截止日"
    labels = "、".join(f"T-{n}" for n in sorted(offsets, reverse=True))
    count = max(offsets)
    text = f"{what}当天(T-0)" if count == 0 else f"{what}前{count}个工作日({labels})"
    holidays = [d for d in campaign.calendar.holidays if day < d <= due_on]
    if holidays:
        text += f"，已避开节假日{'、'.join(_ranges(holidays))}"
        if not campaign.is_working_day(due_on):
            text += f"（{cn_date(due_on)}为节假日，提醒提前，截止日不变）"
    return text + _day_note(campaign, day)


def status_of(reminder: PlannedReminder, state: ObligationState, recorded: ReminderStatus | None,
              now: datetime, campaign: Campaign) -> ReminderStatus:
    """Where one planned reminder stands at `now`, given what was recorded of it."""
    if recorded is not None:
        return recorded
    if state.status in (ObligationStatus.FULFILLED, ObligationStatus.CANCELLED):
        return ReminderStatus.CANCELLED
    if state.armed_since is not None and reminder.at < state.armed_since:
        return ReminderStatus.SKIPPED
    if reminder.at > now:
        return ReminderStatus.SCHEDULED
    # A reminder goes out on its own day or not at all: "due tomorrow" sent a day late is wrong.
    if campaign.local_date(now) > reminder.at.date():
        return ReminderStatus.MISSED
    return ReminderStatus.DUE


def find(state: ObligationState, reminder_id: uuid.UUID, campaign: Campaign
         ) -> PlannedReminder | None:
    return next((r for r in plan(state, campaign) if r.reminder_id == reminder_id), None)


def next_moment(states: Iterable[ObligationState], now: datetime, campaign: Campaign
                ) -> datetime | None:
    """The earliest moment after `now` at which some open obligation has a reminder."""
    moments = [r.at for state in states if state.is_open for r in plan(state, campaign)
               if r.at > now]
    return min(moments, default=None)
