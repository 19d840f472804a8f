"""Supervision and scoring (强化监督问效机制, DOMAIN.md §7): progress per unit, deductions, the board.

Pure: the items and reports come in as folded states, the clock as `now`, the holiday calendar as an
`is_working_day(date)` callable, and the deduction rules as data (the campaign file provides them).

Definitions:
- **registered**: every item ever registered in the unit, 反弹 successors and withdrawn ones included.
- **closed**: items whose status is closed now. An original that rebounded (status reopened) is no
  longer counted as closed: 反弹 counts against the unit.
- **销号率** = closed / (registered − withdrawn), an exact `Fraction`; None when nothing is left to
  count (no items, or all withdrawn).
- **open**: registered, in rectification or close-out requested; **overdue**: open and past its
  整改限期 (`domain.is_overdue`); **reopened**: originals that rebounded.
- **late reports**: monthly lists and self-inspection report whose first submission was late;
  **missing reports**: those still unsubmitted after their due time.
- **traffic light**: red if an open item or an unsubmitted report is past due; yellow if one is due
  within the final `yellow_working_days` working days (the campaign's supervision setting),
  counting today and the due day; else green.

Deductions: a `TriggerOccurrence` says "this happened" (a report came late or never, an item was
still open at the end of a rule's date, a unit had no typical case by its due date, a closed item
rebounded, an item went past its own 整改限期); `decide_deductions`
turns occurrences into PointsDeducted by the rules whose trigger matches. A deduction is identified
by (rule id, trigger ref): the same occurrence seen again never deducts twice. A late monthly list
and a never-submitted one share the ref (the report id), so a list that is missing at the due time
and submitted late later is deducted once. Typical cases are scored by `missing_typical_case` only.

The module stays whole (~490 lines) on purpose: progress, the deduction triggers and the board are
three readings of the one set of definitions above (what is open, overdue, late, missing); kept
side by side they cannot drift apart. The score stream's own state and decisions are at the end.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Any

from services.rectification import commands as c
from services.rectification import events as e
from services.rectification.domain import (
    InvalidCommandError,
    ProblemState,
    ProblemStatus,
    RectificationRules,
    ReportState,
    is_overdue,
    monthly_list_report_id,
    score_stream_id,
    self_inspection_report_id,
    was_open_at,
)
from services.rectification.events import ReportKind
from shared.errors import ForbiddenError
from shared.messages import SYSTEM_ACTOR, Actor, Event, Role, deterministic_id
from shared.pipeline import StreamSpec

# The campaign's working-day calendar (`Campaign.is_working_day`: weekdays, minus holidays, plus
# the weekend days worked in exchange), passed in so this module stays pure.
WorkingDayPredicate = Callable[[date], bool]


# ------------------------------------------------------------------------------------------
# Traffic light


class TrafficLight(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


_LIGHT_ORDER = {TrafficLight.GREEN: 0, TrafficLight.YELLOW: 1, TrafficLight.RED: 2}


def working_days_until(today: date, due_day: date, is_working_day: WorkingDayPredicate,
                       *, stop_after: int | None = None) -> int:
    """Working days in [today, due_day], both counted; stops counting past `stop_after`."""
    count, day = 0, today
    while day <= due_day:
        count += is_working_day(day)
        if stop_after is not None and count > stop_after:
            break
        day += timedelta(days=1)
    return count


def deadline_light(due: datetime, now: datetime, is_working_day: WorkingDayPredicate, *,
                   rules: RectificationRules, yellow_working_days: int,
                   ) -> TrafficLight:
    """Red past `due`; yellow inside its final working days; green before."""
    if now > due:
        return TrafficLight.RED
    left = working_days_until(rules.local_date(now), rules.local_date(due), is_working_day,
                              stop_after=yellow_working_days)
    return TrafficLight.YELLOW if left <= yellow_working_days else TrafficLight.GREEN


def item_light(item: ProblemState, now: datetime, is_working_day: WorkingDayPredicate, *,
               rules: RectificationRules, yellow_working_days: int,
               ) -> TrafficLight | None:
    """The light of one open item; None for an item that is not open."""
    if not item.is_open or item.deadline is None:
        return None
    return deadline_light(rules.due_at(item.deadline), now, is_working_day, rules=rules,
                          yellow_working_days=yellow_working_days)


def _worst(lights: Iterable[TrafficLight | None]) -> TrafficLight:
    present = [light for light in lights if light is not None]
    return max(present, key=_LIGHT_ORDER.__getitem__, default=TrafficLight.GREEN)


# ------------------------------------------------------------------------------------------
# Progress


@dataclass(frozen=True, slots=True)
class ExpectedReport:
    """A report the unit owes: its id (None for "at least one typical case"), kind and due time."""

    report_id: str | None
    kind: ReportKind
    due: datetime


def expected_reports(unit: str, rules: RectificationRules) -> list[ExpectedReport]:
    reports = [ExpectedReport(monthly_list_report_id(unit, month), ReportKind.MONTHLY_LIST,
                              rules.monthly_list_due(month))
               for month in rules.monthly_list_months]
    reports.append(ExpectedReport(self_inspection_report_id(unit),
                                  ReportKind.SELF_INSPECTION_REPORT,
                                  rules.due_at(rules.self_inspection_report_due)))
    reports.append(ExpectedReport(None, ReportKind.TYPICAL_CASE, rules.due_at(rules.typical_case_due)))
    return reports


def _typical_case_by(reports: Iterable[ReportState], unit: str, instant: datetime) -> bool:
    return any(r.kind is ReportKind.TYPICAL_CASE and r.unit == unit
               and r.first_submitted_at is not None and r.first_submitted_at <= instant
               for r in reports)


@dataclass(frozen=True, slots=True)
class UnitProgress:
    unit: str
    registered: int
    withdrawn: int
    open: int
    closed: int
    overdue: int
    reopened: int
    closure_rate: Fraction | None     # 销号率, see the module docstring
    late_reports: int
    missing_reports: int
    light: TrafficLight


def closure_rate(closed: int, registered: int, withdrawn: int) -> Fraction | None:
    counted = registered - withdrawn
    return Fraction(closed, counted) if counted > 0 else None


def unit_progress(unit: str, items: Iterable[ProblemState], reports: Iterable[ReportState], *,
                  now: datetime, is_working_day: WorkingDayPredicate,
                  rules: RectificationRules, yellow_working_days: int,
                  ) -> UnitProgress:
    mine = [item for item in items if item.unit == unit and item.is_registered]
    my_reports = [r for r in reports if r.unit == unit]
    by_id = {r.report_id: r for r in my_reports}
    count = {status: sum(item.status is status for item in mine) for status in ProblemStatus}

    report_lights: list[TrafficLight | None] = []
    missing = 0
    for expected in expected_reports(unit, rules):
        if expected.report_id is None:
            done = any(r.kind is ReportKind.TYPICAL_CASE and r.status is not None
                       for r in my_reports)
        else:
            report = by_id.get(expected.report_id)
            done = report is not None and report.status is not None
        if done:
            continue
        missing += now > expected.due
        report_lights.append(deadline_light(expected.due, now, is_working_day, rules=rules,
                                            yellow_working_days=yellow_working_days))
    item_lights = [item_light(item, now, is_working_day, rules=rules,
                              yellow_working_days=yellow_working_days) for item in mine]
    late = sum(r.late for r in my_reports if r.status is not None
               and r.kind is not ReportKind.TYPICAL_CASE)
    return UnitProgress(
        unit=unit, registered=len(mine), withdrawn=count[ProblemStatus.WITHDRAWN],
        open=sum(item.is_open for item in mine), closed=count[ProblemStatus.CLOSED],
        overdue=sum(is_overdue(item, now, rules) for item in mine),
        reopened=count[ProblemStatus.REOPENED],
        closure_rate=closure_rate(count[ProblemStatus.CLOSED], len(mine),
                                  count[ProblemStatus.WITHDRAWN]),
        late_reports=late, missing_reports=missing, light=_worst([*item_lights, *report_lights]))


# ------------------------------------------------------------------------------------------
# Deduction rules (data) and their triggers


class Trigger(StrEnum):
    LATE_REPORT = "late_report"                  # a monthly list / self-inspection report late or missing
    ITEM_OPEN_AT = "item_open_at"                # per item still open at the end of the rule's date
    MISSING_TYPICAL_CASE = "missing_typical_case"  # no typical case by its due time
    ITEM_REOPENED = "item_reopened"              # per closed item that rebounded (反弹)
    ITEM_OVERDUE = "item_overdue"                # per item that went past its own 整改限期 while open


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise ValueError(f"{what}: give points as a decimal string or an int, not {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation as error:
        raise ValueError(f"{what}: {value!r} is not a decimal") from error
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{what}: points must be positive, got {value!r}")
    return number


def points_str(points: Decimal) -> str:
    """A decimal as events store it: plain digits, never an exponent."""
    return format(points, "f")


@dataclass(frozen=True, slots=True)
class DeductionRule:
    id: str
    points: Decimal
    trigger: Trigger
    date: date | None = None     # item_open_at: the day whose end is checked
    description: str = ""
    max_points: Decimal | None = None  # cap on what this rule takes from one unit in total

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DeductionRule:
        unknown = set(data) - {"id", "points", "trigger", "date", "description", "max_points"}
        if unknown:
            raise ValueError(f"deduction rule: unknown keys {sorted(unknown)}")
        rule_id = str(data["id"])
        trigger = Trigger(data["trigger"])
        raw_date = data.get("date")
        day = (raw_date if isinstance(raw_date, date) or raw_date is None
               else date.fromisoformat(str(raw_date)))
        if trigger is Trigger.ITEM_OPEN_AT and day is None:
            raise ValueError(f"deduction rule {rule_id}: item_open_at needs a date")
        cap = data.get("max_points")
        return cls(id=rule_id, points=_decimal(data["points"], f"deduction rule {rule_id}"),
                   trigger=trigger, date=day, description=str(data.get("description", "")),
                   max_points=None if cap is None else _decimal(cap, f"deduction rule {rule_id} cap"))


DISCRETIONARY_RULE_ID = "discretionary"


def parse_deduction_rules(data: Iterable[Mapping[str, Any]]) -> tuple[DeductionRule, ...]:
    rules = tuple(DeductionRule.from_mapping(item) for item in data)
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise ValueError("deduction rule ids must be unique")
    if DISCRETIONARY_RULE_ID in ids:
        raise ValueError(f"{DISCRETIONARY_RULE_ID!r} is reserved for city_admin's deductions")
    return rules


@dataclass(frozen=True, slots=True)
class TriggerOccurrence:
    """Something happened that rules may deduct for. `ref` identifies it (report id, item@date)."""

    trigger: Trigger
    unit: str
    ref: str
    reason: str
    date: date | None = None


def report_triggers(unit: str, reports: Iterable[ReportState], *, now: datetime,
                    rules: RectificationRules) -> list[TriggerOccurrence]:
    """late_report for each monthly list / self-inspection report submitted late, or still missing
    after its due time; missing_typical_case if none came by the typical-case due time."""
    my_reports = [r for r in reports if r.unit == unit]
    by_id = {r.report_id: r for r in my_reports}
    found: list[TriggerOccurrence] = []
    for expected in expected_reports(unit, rules):
        if expected.report_id is None:
            if now > expected.due and not _typical_case_by(my_reports, unit, expected.due):
                found.append(TriggerOccurrence(
                    Trigger.MISSING_TYPICAL_CASE, unit,
                    f"{unit}-{ReportKind.TYPICAL_CASE}@{rules.local_date(expected.due)}",
                    f"no typical case by {expected.due.isoformat()}"))
            continue
        report = by_id.get(expected.report_id)
        submitted = report is not None and report.status is not None
        if report is not None and submitted and report.late:
            found.append(TriggerOccurrence(Trigger.LATE_REPORT, unit, expected.report_id,
                                           f"{expected.report_id} submitted after "
                                           f"{expected.due.isoformat()}"))
        elif not submitted and now > expected.due:
            found.append(TriggerOccurrence(Trigger.LATE_REPORT, unit, expected.report_id,
                                           f"{expected.report_id} not submitted by "
                                           f"{expected.due.isoformat()}"))
    return found


def open_item_triggers(unit: str, items: Iterable[ProblemState], *, day: date, now: datetime,
                       rules: RectificationRules) -> list[TriggerOccurrence]:
    """item_open_at for each item of the unit still open at the last instant of `day`, once that
    instant has passed (judged from the item's history, so a late evaluation gives the same)."""
    cutoff = rules.due_at(day)
    if now <= cutoff:
        return []
    return [TriggerOccurrence(Trigger.ITEM_OPEN_AT, unit, f"{item.problem_id}@{day}",
                              f"序号 {item.seq_no} still open at the end of {day}", date=day)
            for item in sorted(items, key=lambda i: i.seq_no)
            if item.unit == unit and was_open_at(item, cutoff)]


def reopened_item_triggers(unit: str, items: Iterable[ProblemState]) -> list[TriggerOccurrence]:
    """item_reopened for each of the unit's closed items that rebounded (the original, whose
    status is reopened; its successor is a new item and is judged on its own)."""
    return [TriggerOccurrence(Trigger.ITEM_REOPENED, unit, f"{item.problem_id}@reopened",
                              f"序号 {item.seq_no} rebounded after close-out")
            for item in sorted(items, key=lambda i: i.seq_no)
            if item.unit == unit and item.status is ProblemStatus.REOPENED]


def overdue_item_triggers(unit: str, items: Iterable[ProblemState], *, now: datetime,
                          rules: RectificationRules) -> list[TriggerOccurrence]:
    """item_overdue for each of the unit's items that was open past the last instant of its
    整改限期: still open now, or closed after it. Judged with the deadline the item has now, so an
    extension approved before a check runs spares it; withdrawn items never count."""
    found = []
    for item in sorted(items, key=lambda i: i.seq_no):
        if item.unit != unit or not item.is_registered or item.deadline is None:
            continue
        if item.status is ProblemStatus.WITHDRAWN:
            continue
        due = rules.due_at(item.deadline)
        ended = now if item.is_open else item.closed_at
        if ended is not None and ended > due and now > due:
            found.append(TriggerOccurrence(Trigger.ITEM_OVERDUE, unit, f"{item.problem_id}@overdue",
                                           f"序号 {item.seq_no} past its 整改限期 {item.deadline}"))
    return found


def triggers_due(unit: str, *, items: Iterable[ProblemState], reports: Iterable[ReportState],
                 now: datetime, deduction_rules: Sequence[DeductionRule],
                 rules: RectificationRules) -> list[TriggerOccurrence]:
    """Every occurrence known at `now` for the unit; feed to `decide_deductions` (idempotent)."""
    items = list(items)
    triggers = {r.trigger for r in deduction_rules}
    found = report_triggers(unit, reports, now=now, rules=rules)
    for day in sorted({r.date for r in deduction_rules
                       if r.trigger is Trigger.ITEM_OPEN_AT and r.date is not None}):
        found += open_item_triggers(unit, items, day=day, now=now, rules=rules)
    if Trigger.ITEM_REOPENED in triggers:
        found += reopened_item_triggers(unit, items)
    if Trigger.ITEM_OVERDUE in triggers:
        found += overdue_item_triggers(unit, items, now=now, rules=rules)
    return found


# ------------------------------------------------------------------------------------------
# Score state and decisions (stream `score-<unit>`)


@dataclass(frozen=True, slots=True)
class ScoreState:
    unit: str
    applied: frozenset[tuple[str, str]] = frozenset()   # (rule id, trigger ref)
    deducted: Decimal = Decimal(0)
    deductions: tuple[e.PointsDeducted, ...] = ()


def evolve_score(state: ScoreState, event: Event) -> ScoreState:
    if not isinstance(event, e.PointsDeducted):
        raise TypeError(f"not a score event: {type(event).__name__}")
    return replace(state, applied=state.applied | {(event.rule_id, event.trigger_ref)},
                   deducted=state.deducted + Decimal(event.points),
                   deductions=(*state.deductions, event))


def score_spec(unit: str) -> StreamSpec[ScoreState]:
    return StreamSpec(score_stream_id(unit), evolve_score, ScoreState(unit=unit))


def fold_score(unit: str, events: Iterable[Event]) -> ScoreState:
    state = ScoreState(unit=unit)
    for event in events:
        state = evolve_score(state, event)
    return state


def deduction_event_id(event: e.PointsDeducted) -> uuid.UUID:
    """A stable event id for a deduction, so a retried append is recognised by the store too."""
    return deterministic_id("rectification", "deduction", event.unit, event.rule_id,
                            event.trigger_ref)


def decide_deductions(score: ScoreState, occurrences: Iterable[TriggerOccurrence],
                      deduction_rules: Sequence[DeductionRule], *,
                      decided_by: str = SYSTEM_ACTOR.id) -> list[e.PointsDeducted]:
    """PointsDeducted for each (rule, occurrence) pair of this unit whose trigger matches and that
    has not been deducted before. A rule with `max_points` takes no more than that from the unit
    in all: the occurrence that reaches the cap takes only what is left, later ones nothing (in
    the order given, which the trigger functions keep stable: by 序号)."""
    seen = set(score.applied)
    taken: dict[str, Decimal] = {}
    for past in score.deductions:
        taken[past.rule_id] = taken.get(past.rule_id, Decimal(0)) + Decimal(past.points)
    decided: list[e.PointsDeducted] = []
    for occurrence in occurrences:
        if occurrence.unit != score.unit:
            continue
        for rule in deduction_rules:
            if rule.trigger is not occurrence.trigger:
                continue
            if rule.trigger is Trigger.ITEM_OPEN_AT and rule.date != occurrence.date:
                continue
            key = (rule.id, occurrence.ref)
            if key in seen:
                continue
            points = rule.points
            if rule.max_points is not None:
                points = min(points, rule.max_points - taken.get(rule.id, Decimal(0)))
                if points <= 0:
                    continue  # capped: not recorded as applied, so nothing is ever taken for it
            seen.add(key)
            taken[rule.id] = taken.get(rule.id, Decimal(0)) + points
            reason = f"{rule.description}: {occurrence.reason}" if rule.description else occurrence.reason
            decided.append(e.PointsDeducted(
                unit=score.unit, points=points_str(points), rule_id=rule.id,
                trigger_ref=occurrence.ref, reason=reason, discretionary=False,
                decided_by=decided_by))
    return decided


def decide_discretionary_deduction(score: ScoreState, cmd: c.DeductPoints, *, actor: Actor,
                                   now: datetime) -> list[e.PointsDeducted]:
    """酌情扣分 by city_admin, with a reason; the command's deduction id makes a retry harmless."""
    if actor.role is not Role.CITY_ADMIN:
        raise ForbiddenError(f"discretionary deductions need city_admin; {actor.role} may not")
    if cmd.unit != score.unit:
        raise ValueError("the score state given is not this unit's")
    key = (DISCRETIONARY_RULE_ID, str(cmd.deduction_id))
    if key in score.applied:
        return []
    points = Decimal(cmd.points)
    if points <= 0:
        raise InvalidCommandError("a deduction must take away a positive number of points")
    return [e.PointsDeducted(unit=score.unit, points=points_str(points),
                             rule_id=DISCRETIONARY_RULE_ID, trigger_ref=str(cmd.deduction_id),
                             reason=cmd.reason, discretionary=True, decided_by=actor.id)]


# ------------------------------------------------------------------------------------------
# Score board


@dataclass(frozen=True, slots=True)
class ScoreRow:
    rank: int
    unit: str
    score: Decimal
    deducted: Decimal
    closure_rate: Fraction | None


def score_board(units: Sequence[str], scores: Mapping[str, ScoreState],
                progress: Mapping[str, UnitProgress] | None = None, *,
                base: Decimal = Decimal(100)) -> list[ScoreRow]:
    """Rank the units: score (base minus deductions) high to low, then 销号率 high to low (a unit
    with nothing to close counts as 100%), then unit code. Every unit gets its own rank."""
    rows = []
    for unit in units:
        deducted = scores[unit].deducted if unit in scores else Decimal(0)
        rate = progress[unit].closure_rate if progress and unit in progress else None
        rows.append((base - deducted, deducted, rate, unit))
    rows.sort(key=lambda r: (-r[0], -(r[2] if r[2] is not None else Fraction(1)), r[3]))
    return [ScoreRow(rank=i, unit=unit, score=score, deducted=deducted, closure_rate=rate)
            for i, (score, deducted, rate, unit) in enumerate(rows, start=1)]
