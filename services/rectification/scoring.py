"""Supervision and scoring (强化监督问效机制, DOMAIN.md §7): progress per unit, deductions, refunds, the
board.

Pure: the items and reports come in as folded states, the clock as `now`, the holiday calendar as an
`is_working_day(date)` callable, and the deduction rules as data (the campaign file provides them).

Definitions:
- **registered**: every item ever registered in the unit, 反弹 successors and withdrawn ones included.
- **closed**: items whose status is closed now. An original that rebounded (status reopened) is no
  longer counted as closed: 反弹 counts against the unit.
- **销号率** = closed / (registered − withdrawn), kept as the two counts (`ClosureRate`: "0/5",
  never reduced to "0/1") with a percentage; undefined when nothing is left to count.
- **open**: registered, in rectification or close-out requested; **overdue**: open and past its
  整改限期 (`domain.is_overdue`); **reopened**: originals that rebounded.
- **submissions**: every campaign deadline a unit files something by (`rules.submissions`: 附件1
  liaisons, the work plan, the monthly lists, the self-inspection report, typical cases, as many
  as the deadline's `min_count`). **late**: filed after the due time; **missing**: not filed yet,
  the due time past. A deadline is **not met** when nothing (or too few) had come by its due
  time: a historical fact a later filing does not change.
- **traffic light**: red if an open item or an unsubmitted report is past due; yellow if one is due
  within the final `yellow_working_days` working days (the campaign's supervision setting),
  counting today and the due day; else green.

Deductions: a `TriggerOccurrence` says "this happened" (a deadline not met, an item still open at
the end of a rule's date, a closed item rebounded, an item past its own 整改限期);
`decide_deductions` turns occurrences into PointsDeducted by the rules that match them
(`rule_matches`: a rule naming a deadline beats one naming none). A deduction is identified by
(rule id, trigger ref): the same occurrence seen again never deducts twice; a list missing at the
due time and filed late later is one occurrence (its report id). `decide_refunds` gives back, by a
compensating PointsRefunded, a deduction whose occurrence no longer holds (an extension approved
afterwards, an overdue item withdrawn, 附件1 found filed on time): never an edit.

The module stays whole on purpose: progress, the deduction triggers, refunds and the board are
readings of the one set of definitions above (what is open, overdue, late, missing); kept side by
side they cannot drift apart. The score stream's own state and decisions are at the end.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
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
    work_plan_report_id,
)
from services.rectification.domain.rules import Submission, SubmissionKind, zh_date, zh_datetime
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
# Submissions: what a unit files by a campaign deadline, and when it did


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """How one unit met one campaign deadline: when its material was first complete (None: not
    yet), and how many it had filed by the due time (typical cases count)."""

    submission: Submission
    due: datetime
    complete_at: datetime | None
    count_by_due: int

    @property
    def met(self) -> bool:
        return self.complete_at is not None and self.complete_at <= self.due

    def failed(self, now: datetime) -> bool:
        """Not met by the due time, once that time has passed: submitted late, or not at all (a
        historical fact: a later submission never makes the deadline met)."""
        return now > self.due and not self.met

    def late(self) -> bool:
        return self.complete_at is not None and self.complete_at > self.due


def _first_times(reports: Iterable[ReportState], kind: ReportKind) -> list[datetime]:
    return sorted(r.first_submitted_at for r in reports
                  if r.kind is kind and r.first_submitted_at is not None)


def submission_records(unit: str, reports: Iterable[ReportState], *, rules: RectificationRules,
                       liaisons_at: datetime | None) -> list[SubmissionRecord]:
    """Every deadline the unit submits something by, with when it did. `liaisons_at`: when the
    unit's 附件1 was complete (both roles registered with the registry), None if not yet."""
    mine = [r for r in reports if r.unit == unit]
    by_id = {r.report_id: r for r in mine}
    records = []
    for submission in rules.submissions:
        due = rules.due_at(submission.due_on)
        complete_at: datetime | None
        count = 0
        match submission.kind:
            case SubmissionKind.LIAISONS:
                complete_at = liaisons_at
            case SubmissionKind.TYPICAL_CASE:
                times = _first_times(mine, ReportKind.TYPICAL_CASE)
                complete_at = (times[submission.min_count - 1] if len(times) >= submission.min_count
                               else None)
                count = sum(t <= due for t in times)
            case _:
                report = by_id.get(_report_id(unit, submission))
                complete_at = report.first_submitted_at if report is not None else None
        if complete_at is not None and complete_at <= due:
            count = max(count, 1)
        records.append(SubmissionRecord(submission, due, complete_at, count))
    return records


def _report_id(unit: str, submission: Submission) -> str:
    match submission.kind:
        case SubmissionKind.MONTHLY_LIST:
            return monthly_list_report_id(unit, submission.period or "")
        case SubmissionKind.SELF_INSPECTION_REPORT:
            return self_inspection_report_id(unit)
        case SubmissionKind.WORK_PLAN:
            return work_plan_report_id(unit)
    raise ValueError(f"{submission.kind} is not one report of the unit")


def submission_ref(unit: str, submission: Submission) -> str:
    """The occurrence id of a deadline not met: the report's id where there is one report (so
    "missing, then late" is one occurrence), else the unit and the deadline."""
    match submission.kind:
        case SubmissionKind.TYPICAL_CASE:
            return f"{unit}-{ReportKind.TYPICAL_CASE}@{submission.due_on}"
        case SubmissionKind.LIAISONS:
            return f"{unit}-{SubmissionKind.LIAISONS}@{submission.due_on}"
    return _report_id(unit, submission)


# ------------------------------------------------------------------------------------------
# Progress


@dataclass(frozen=True, slots=True)
class ClosureRate:
    """销号率: closed items of the items that count (registered − withdrawn), as counts, never as
    a reduced fraction (0 of 5 is "0/5", not "0/1")."""

    closed: int
    counted: int

    @property
    def fraction(self) -> Fraction | None:
        return Fraction(self.closed, self.counted) if self.counted > 0 else None

    @property
    def percent(self) -> Decimal | None:
        """One decimal, half up (33.3, 66.7, 100.0)."""
        if self.counted <= 0:
            return None
        value = Decimal(self.closed) * 100 / Decimal(self.counted)
        return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def text(self) -> str:
        """As the board prints it: 3/4（75.0%）, or 无问题 when nothing counts."""
        if self.percent is None:
            return "无问题"
        return f"{self.closed}/{self.counted}（{self.percent}%）"


@dataclass(frozen=True, slots=True)
class UnitProgress:
    unit: str
    registered: int
    withdrawn: int
    open: int
    closed: int
    overdue: int
    reopened: int
    closure: ClosureRate             # 销号率, see the module docstring
    late_reports: int
    missing_reports: int
    light: TrafficLight

    @property
    def closure_rate(self) -> Fraction | None:
        return self.closure.fraction


def closure_rate(closed: int, registered: int, withdrawn: int) -> Fraction | None:
    return ClosureRate(closed, registered - withdrawn).fraction


def unit_progress(unit: str, items: Iterable[ProblemState], reports: Iterable[ReportState], *,
                  now: datetime, is_working_day: WorkingDayPredicate,
                  rules: RectificationRules, yellow_working_days: int,
                  liaisons_at: datetime | None = None) -> UnitProgress:
    mine = [item for item in items if item.unit == unit and item.is_registered]
    count = {status: sum(item.status is status for item in mine) for status in ProblemStatus}

    report_lights: list[TrafficLight | None] = []
    missing = late = 0
    for record in submission_records(unit, reports, rules=rules, liaisons_at=liaisons_at):
        late += record.late()
        if record.complete_at is not None:
            continue
        missing += now > record.due
        report_lights.append(deadline_light(record.due, now, is_working_day, rules=rules,
                                            yellow_working_days=yellow_working_days))
    item_lights = [item_light(item, now, is_working_day, rules=rules,
                              yellow_working_days=yellow_working_days) for item in mine]
    return UnitProgress(
        unit=unit, registered=len(mine), withdrawn=count[ProblemStatus.WITHDRAWN],
        open=sum(item.is_open for item in mine), closed=count[ProblemStatus.CLOSED],
        overdue=sum(is_overdue(item, now, rules) for item in mine),
        reopened=count[ProblemStatus.REOPENED],
        closure=ClosureRate(count[ProblemStatus.CLOSED], len(mine) - count[ProblemStatus.WITHDRAWN]),
        late_reports=late, missing_reports=missing, light=_worst([*item_lights, *report_lights]))


# ------------------------------------------------------------------------------------------
# Deduction rules (data) and their triggers


class Trigger(StrEnum):
    LATE_SUBMISSION = "late_submission"          # a deadline's material after its due time, or never
    MISSING_SUBMISSION = "missing_submission"    # nothing (or too few) by a deadline's due time
    ITEM_OPEN_AT = "item_open_at"                # per item still open at the end of the rule's date
    ITEM_REOPENED = "item_reopened"              # per closed item that rebounded (反弹)
    ITEM_OVERDUE = "item_overdue"                # per item that went past its own 整改限期 while open


SUBMISSION_TRIGGERS = frozenset({Trigger.LATE_SUBMISSION, Trigger.MISSING_SUBMISSION})


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
    deadline: str | None = None  # submission triggers: the campaign deadline's code; None = every one

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DeductionRule:
        unknown = set(data) - {"id", "points", "trigger", "date", "description", "max_points",
                               "deadline"}
        if unknown:
            raise ValueError(f"deduction rule: unknown keys {sorted(unknown)}")
        rule_id = str(data["id"])
        trigger = Trigger(data["trigger"])
        raw_date = data.get("date")
        day = (raw_date if isinstance(raw_date, date) or raw_date is None
               else date.fromisoformat(str(raw_date)))
        if trigger is Trigger.ITEM_OPEN_AT and day is None:
            raise ValueError(f"deduction rule {rule_id}: item_open_at needs a date")
        deadline = data.get("deadline")
        if trigger is Trigger.MISSING_SUBMISSION and not deadline:
            raise ValueError(f"deduction rule {rule_id}: missing_submission needs a deadline")
        cap = data.get("max_points")
        return cls(id=rule_id, points=_decimal(data["points"], f"deduction rule {rule_id}"),
                   trigger=trigger, date=day, description=str(data.get("description", "")),
                   max_points=None if cap is None else _decimal(cap, f"deduction rule {rule_id} cap"),
                   deadline=None if deadline is None else str(deadline))


DISCRETIONARY_RULE_ID = "discretionary"
DISCRETIONARY_DESCRIPTION = "市民政局酌情扣分"


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
    """Something happened that rules may deduct for. `ref` identifies it (report id, item@date).
    `deadline`: the campaign deadline a submission occurrence is about; `problem_id`: the item an
    item occurrence is about (what the board links the deduction to)."""

    trigger: Trigger
    unit: str
    ref: str
    reason: str
    date: date | None = None
    deadline: str | None = None
    problem_id: uuid.UUID | None = None


def rule_matches(rule: DeductionRule, occurrence: TriggerOccurrence,
                 deduction_rules: Sequence[DeductionRule]) -> bool:
    """Whether `rule` deducts for `occurrence`. A deadline not met is one occurrence, judged by
    the rules that name its deadline (late or missing alike: both mean "not by the due time"),
    and by a rule naming no deadline only when no rule names it: the specific rule wins."""
    if occurrence.trigger in SUBMISSION_TRIGGERS:
        if rule.trigger not in SUBMISSION_TRIGGERS:
            return False
        if rule.deadline is not None:
            return rule.deadline == occurrence.deadline
        return not any(other.deadline == occurrence.deadline for other in deduction_rules
                       if other.trigger in SUBMISSION_TRIGGERS)
    if rule.trigger is not occurrence.trigger:
        return False
    return rule.trigger is not Trigger.ITEM_OPEN_AT or rule.date == occurrence.date


def submission_triggers(unit: str, records: Iterable[SubmissionRecord], *, now: datetime,
                        rules: RectificationRules) -> list[TriggerOccurrence]:
    """One occurrence per deadline the unit did not meet by its due time (late or not at all)."""
    found = []
    for record in records:
        if not record.failed(now):
            continue
        submission = record.submission
        due_text = zh_date(submission.due_on)
        if submission.min_count > 1 and record.complete_at is None:
            reason = (f"{submission.name}截至{due_text}报送{record.count_by_due}份，"
                      f"少于要求的{submission.min_count}份")
        elif record.complete_at is None:
            reason = f"{submission.name}截至报送期限{due_text}未报送"
        else:
            reason = (f"{submission.name}于{zh_datetime(record.complete_at, rules.tz)}报送，"
                      f"晚于报送期限{due_text}")
        found.append(TriggerOccurrence(Trigger.LATE_SUBMISSION, unit,
                                       submission_ref(unit, submission), reason,
                                       deadline=submission.code))
    return found


def _item_text(item: ProblemState) -> str:
    return f"序号{item.seq_no}（{item.project_name}）"


def spared_by_extension(item: ProblemState, day: date) -> bool:
    """An approved extension moved the item's 整改限期 past `day`: the authority that approved it
    let the item stay open that long, so it is not held against the unit."""
    return item.extensions_granted > 0 and item.deadline is not None and item.deadline > day


def open_item_triggers(unit: str, items: Iterable[ProblemState], *, day: date, now: datetime,
                       rules: RectificationRules) -> list[TriggerOccurrence]:
    """item_open_at for each item of the unit still open at the last instant of `day`, once that
    instant has passed (judged from the item's history, so a late evaluation gives the same),
    unless an approved extension moved its 整改限期 past the day."""
    cutoff = rules.due_at(day)
    if now <= cutoff:
        return []
    return [TriggerOccurrence(Trigger.ITEM_OPEN_AT, unit, f"{item.problem_id}@{day}",
                              f"{_item_text(item)}截至{zh_date(day)}仍未销号", date=day,
                              problem_id=item.problem_id)
            for item in sorted(items, key=lambda i: i.seq_no)
            if item.unit == unit and was_open_at(item, cutoff)
            and not spared_by_extension(item, day)]


def reopened_item_triggers(unit: str, items: Iterable[ProblemState]) -> list[TriggerOccurrence]:
    """item_reopened for each of the unit's closed items that rebounded (the original, whose
    status is reopened; its successor is a new item and is judged on its own)."""
    return [TriggerOccurrence(Trigger.ITEM_REOPENED, unit, f"{item.problem_id}@reopened",
                              f"{_item_text(item)}销号后反弹", problem_id=item.problem_id)
            for item in sorted(items, key=lambda i: i.seq_no)
            if item.unit == unit and item.status is ProblemStatus.REOPENED]


def overdue_ref(item: ProblemState) -> str:
    """`<id>@overdue` against the registered 整改限期; once an extension was granted, against the
    extended one (`<id>@overdue@<date>`), so overdue again after an extension is a new occurrence."""
    if item.extensions_granted == 0:
        return f"{item.problem_id}@overdue"
    return f"{item.problem_id}@overdue@{item.deadline}"


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
            found.append(TriggerOccurrence(
                Trigger.ITEM_OVERDUE, unit, overdue_ref(item),
                f"{_item_text(item)}超过整改限期{zh_date(item.deadline)}未销号",
                problem_id=item.problem_id))
    return found


def triggers_due(unit: str, *, items: Iterable[ProblemState], reports: Iterable[ReportState],
                 now: datetime, deduction_rules: Sequence[DeductionRule],
                 rules: RectificationRules, liaisons_at: datetime | None = None,
                 ) -> list[TriggerOccurrence]:
    """Every occurrence known at `now` for the unit; feed to `decide_deductions` (idempotent)."""
    items = list(items)
    triggers = {r.trigger for r in deduction_rules}
    found: list[TriggerOccurrence] = []
    if triggers & SUBMISSION_TRIGGERS:
        records = submission_records(unit, reports, rules=rules, liaisons_at=liaisons_at)
        found += submission_triggers(unit, records, now=now, rules=rules)
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
    applied: frozenset[tuple[str, str]] = frozenset()   # (rule id, trigger ref), refunded or not
    deducted: Decimal = Decimal(0)                      # net of refunds
    deductions: tuple[e.PointsDeducted, ...] = ()
    refunds: tuple[e.PointsRefunded, ...] = ()

    @property
    def refunded(self) -> frozenset[tuple[str, str]]:
        return frozenset((r.rule_id, r.trigger_ref) for r in self.refunds)

    def taken_by(self, rule_id: str) -> Decimal:
        """What a rule has taken from the unit, net of refunds (its cap counts this)."""
        taken = sum((Decimal(x.points) for x in self.deductions if x.rule_id == rule_id), Decimal(0))
        return taken - sum((Decimal(x.points) for x in self.refunds if x.rule_id == rule_id),
                           Decimal(0))


def evolve_score(state: ScoreState, event: Event) -> ScoreState:
    if isinstance(event, e.PointsDeducted):
        return replace(state, applied=state.applied | {(event.rule_id, event.trigger_ref)},
                       deducted=state.deducted + Decimal(event.points),
                       deductions=(*state.deductions, event))
    if isinstance(event, e.PointsRefunded):
        return replace(state, deducted=state.deducted - Decimal(event.points),
                       refunds=(*state.refunds, event))
    raise TypeError(f"not a score event: {type(event).__name__}")


def score_spec(unit: str) -> StreamSpec[ScoreState]:
    return StreamSpec(score_stream_id(unit), evolve_score, ScoreState(unit=unit))


def fold_score(unit: str, events: Iterable[Event]) -> ScoreState:
    state = ScoreState(unit=unit)
    for event in events:
        state = evolve_score(state, event)
    return state


def deduction_event_id(event: e.PointsDeducted | e.PointsRefunded) -> uuid.UUID:
    """A stable event id for a deduction (or its refund), so a retried append is recognised by
    the store too."""
    kind = "refund" if isinstance(event, e.PointsRefunded) else "deduction"
    return deterministic_id("rectification", kind, event.unit, event.rule_id, event.trigger_ref)


def decide_deductions(score: ScoreState, occurrences: Iterable[TriggerOccurrence],
                      deduction_rules: Sequence[DeductionRule], *,
                      decided_by: str = SYSTEM_ACTOR.id) -> list[e.PointsDeducted]:
    """PointsDeducted for each (rule, occurrence) pair of this unit that `rule_matches` and that
    has not been deducted before. A rule with `max_points` takes no more than that from the unit
    in all (net of refunds): the occurrence that reaches the cap takes only what is left, later
    ones nothing (in the order given, which the trigger functions keep stable: by 序号)."""
    seen = set(score.applied)
    taken = {rule.id: score.taken_by(rule.id) for rule in deduction_rules}
    decided: list[e.PointsDeducted] = []
    for occurrence in occurrences:
        if occurrence.unit != score.unit:
            continue
        for rule in deduction_rules:
            if not rule_matches(rule, occurrence, deduction_rules):
                continue
            key = (rule.id, occurrence.ref)
            if key in seen:
                continue
            points = rule.points
            if rule.max_points is not None:
                points = min(points, rule.max_points - taken[rule.id])
                if points <= 0:
                    continue  # capped: not recorded as applied, so nothing is ever taken for it
            seen.add(key)
            taken[rule.id] += points
            reason = (f"{rule.description}：{occurrence.reason}" if rule.description
                      else occurrence.reason)
            decided.append(e.PointsDeducted(
                unit=score.unit, points=points_str(points), rule_id=rule.id,
                trigger_ref=occurrence.ref, reason=reason, discretionary=False,
                decided_by=decided_by, trigger=str(occurrence.trigger),
                deadline=occurrence.deadline, problem_id=occurrence.problem_id))
    return decided


def _problem_of(deduction: e.PointsDeducted) -> uuid.UUID | None:
    if deduction.problem_id is not None:
        return deduction.problem_id
    try:
        return uuid.UUID(deduction.trigger_ref.split("@", 1)[0])
    except ValueError:
        return None


def _refund_reason(deduction: e.PointsDeducted, items: Mapping[uuid.UUID, ProblemState]) -> str:
    problem_id = _problem_of(deduction)
    item = items.get(problem_id) if problem_id is not None else None
    if item is not None and item.status is ProblemStatus.WITHDRAWN:
        return f"{_item_text(item)}已撤销（登记有误），退还该项扣分"
    if item is not None and item.extensions_granted > 0 and item.deadline is not None:
        return f"{_item_text(item)}的整改限期经批准延至{zh_date(item.deadline)}，退还该项扣分"
    return "经复核，扣分情形已不成立，退还该项扣分"


def decide_refunds(score: ScoreState, occurrences: Iterable[TriggerOccurrence],
                   deduction_rules: Sequence[DeductionRule], *,
                   items: Iterable[ProblemState] = (),
                   decided_by: str = SYSTEM_ACTOR.id) -> list[e.PointsRefunded]:
    """PointsRefunded for each past automatic deduction whose occurrence no longer holds: the
    score is always the rules applied to the record as it stands. Never an edit: the deduction
    stays in the log and a compensating event gives its points back. Happens when an approved
    extension moves an item's 整改限期 (item_open_at, item_overdue), when an overdue item is
    withdrawn as registered in error, and when another service's fact arrives after a check
    judged without it (附件1 filed on time). Only deductions of rules the campaign file still
    lists are judged; discretionary ones never."""
    active = {rule.id: rule for rule in deduction_rules}
    held = {(rule.id, occurrence.ref) for occurrence in occurrences
            if occurrence.unit == score.unit
            for rule in deduction_rules if rule_matches(rule, occurrence, deduction_rules)}
    refunded = score.refunded
    by_id = {item.problem_id: item for item in items if item.problem_id is not None}
    decided = []
    for deduction in score.deductions:
        key = (deduction.rule_id, deduction.trigger_ref)
        if deduction.discretionary or deduction.rule_id not in active or key in refunded:
            continue
        if key in held:
            continue
        decided.append(e.PointsRefunded(
            unit=score.unit, points=deduction.points, rule_id=deduction.rule_id,
            trigger_ref=deduction.trigger_ref, deduction_event_id=deduction_event_id(deduction),
            reason=_refund_reason(deduction, by_id), decided_by=decided_by))
    return decided


def decide_score_check(score: ScoreState, occurrences: Sequence[TriggerOccurrence],
                       deduction_rules: Sequence[DeductionRule], *,
                       items: Iterable[ProblemState] = (),
                       decided_by: str = SYSTEM_ACTOR.id) -> list[Event]:
    """One deduction check of a unit: refunds first (they free room under a cap), then the new
    deductions."""
    refunds = decide_refunds(score, occurrences, deduction_rules, items=items,
                             decided_by=decided_by)
    after = score
    for refund in refunds:
        after = evolve_score(after, refund)
    deductions = decide_deductions(after, occurrences, deduction_rules, decided_by=decided_by)
    return [*refunds, *deductions]


def decide_discretionary_deduction(score: ScoreState, cmd: c.DeductPoints, *, actor: Actor,
                                   now: datetime) -> list[e.PointsDeducted]:
    """酌情扣分 by city_admin, with a reason; the command's deduction id makes a retry harmless."""
    if actor.role is not Role.CITY_ADMIN:
        raise ForbiddenError(f"discretionary deductions need city_admin; {actor.role} may not",
                             zh="酌情扣分须由市民政局管理员办理。")
    if cmd.unit != score.unit:
        raise ValueError("the score state given is not this unit's")
    key = (DISCRETIONARY_RULE_ID, str(cmd.deduction_id))
    if key in score.applied:
        return []
    points = Decimal(cmd.points)
    if points <= 0:
        raise InvalidCommandError("a deduction must take away a positive number of points",
                                  zh="扣分分值须大于0。")
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
    closure: ClosureRate | None

    @property
    def closure_rate(self) -> Fraction | None:
        return self.closure.fraction if self.closure is not None else None


# How the board is ordered, as the page says it (`score_board` does exactly this).
BOARD_ORDER_ZH = ("按得分（100分减去扣分，退还的扣分不计）从高到低排名；得分相同的，按销号率从高到低"
                  "（没有需销号问题的单位按100%计）；仍相同的，按单位代码排序。")


def score_board(units: Sequence[str], scores: Mapping[str, ScoreState],
                progress: Mapping[str, UnitProgress] | None = None, *,
                base: Decimal = Decimal(100)) -> list[ScoreRow]:
    """Rank the units (`BOARD_ORDER_ZH`): score (base minus deductions net of refunds) high to
    low, then 销号率 high to low (a unit with nothing to close counts as 100%), then unit code.
    Every unit gets its own rank."""
    rows = []
    for unit in units:
        deducted = scores[unit].deducted if unit in scores else Decimal(0)
        closure = progress[unit].closure if progress and unit in progress else None
        rate = closure.fraction if closure is not None else None
        rows.append((base - deducted, deducted, rate, unit, closure))
    rows.sort(key=lambda r: (-r[0], -(r[2] if r[2] is not None else Fraction(1)), r[3]))
    return [ScoreRow(rank=i, unit=unit, score=score, deducted=deducted, closure=closure)
            for i, (score, deducted, _, unit, closure) in enumerate(rows, start=1)]
