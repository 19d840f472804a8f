"""A unit's reports (stream `report-<report_id>`): its monthly lists (frozen snapshots of its
problem list), its self-inspection report and its typical cases. State, fold, decide. Pure.

Each is submitted by the unit's 填报人 and reviewed by its 审核人 (never the same person); the city
(city_admin) may return a monthly list. A report is accepted when late, and marked late.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from services.rectification import commands as c
from services.rectification import events as e
from services.rectification.domain.rules import (
    FourEyesError,
    InvalidCommandError,
    RectificationRules,
    monthly_list_report_id,
    require_commander,
    require_own_unit,
    require_role,
    self_inspection_report_id,
    typical_case_report_id,
    work_plan_report_id,
)
from services.rectification.events import ReportKind
from shared.errors import IllegalTransitionError, NotFoundError
from shared.messages import Actor, Event, Role


class ReportStatus(StrEnum):
    SUBMITTED = "submitted"      # by the unit's 填报人, waiting for its 审核人
    REVIEWED = "reviewed"        # approved by the 审核人
    RETURNED = "returned"        # sent back (by the 审核人 or, for monthly lists, the city)


REPORT_STATUS_LABELS = {
    None: "未报送",
    ReportStatus.SUBMITTED: "已报送待审核",
    ReportStatus.REVIEWED: "已审核",
    ReportStatus.RETURNED: "已退回",
}
NO_REPORT_ZH = "未找到该材料，请核对材料编号。"
# Reports a unit files once (no period in their id): the self-inspection report, the work plan.
UNIT_REPORTS = frozenset({ReportKind.SELF_INSPECTION_REPORT, ReportKind.WORK_PLAN})


@dataclass(frozen=True, slots=True)
class ReportState:
    """One report of a unit: a monthly list, its self-inspection report, or one typical case.

    `late` is the lateness of the FIRST submission: a report returned for correction and
    resubmitted after the due date is not late a second time (the unit met the date once).
    """

    report_id: str
    kind: ReportKind
    unit: str
    period: str = ""             # "2024-03" for a monthly list, the case id for a typical case
    status: ReportStatus | None = None
    version: int = 0
    submitted_by: str | None = None
    submitter: str | None = None
    submitted_at: datetime | None = None
    first_submitted_at: datetime | None = None
    due: datetime | None = None
    late: bool = False
    rows: tuple[e.ProblemListRow, ...] = ()
    title: str = ""
    text: str = ""
    attachment_hashes: tuple[str, ...] = ()
    reviewed_by: str | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    comments: tuple[str, ...] = ()


def new_report(report_id: str, kind: ReportKind, unit: str, period: str = "") -> ReportState:
    return ReportState(report_id=report_id, kind=kind, unit=unit, period=period)


def report_initial(report_id: str) -> ReportState:
    """The empty state of a report from its id (`<unit>-<kind>[-<period>]`; unit codes and kinds
    have no hyphen). NotFoundError for an id that is no report id."""
    unit, _, rest = report_id.partition("-")
    kind_text, _, period = rest.partition("-")
    try:
        kind = ReportKind(kind_text)
    except ValueError:
        raise NotFoundError(f"no report {report_id}", zh=NO_REPORT_ZH) from None
    if not unit or (kind in UNIT_REPORTS) == bool(period):
        raise NotFoundError(f"no report {report_id}", zh=NO_REPORT_ZH)
    return new_report(report_id, kind, unit, period)


# ------------------------------------------------------------------------------------------
# Decide


def _require_reporter_of(actor: Actor, unit: str, what: str) -> None:
    require_commander(actor)
    require_own_unit(actor, unit)
    require_role(actor, (Role.DISTRICT_REPORTER,), what)


def _require_submittable(report: ReportState, what: str) -> None:
    if report.status not in (None, ReportStatus.RETURNED):
        raise IllegalTransitionError(
            f"cannot {what}: report {report.report_id} is {report.status}",
            zh=f"该材料当前为「{REPORT_STATUS_LABELS.get(report.status, '')}」，退回后才能重新报送。")


def decide_submit_monthly_list(
    report: ReportState, cmd: c.SubmitMonthlyList, *, rows: Sequence[e.ProblemListRow],
    actor: Actor, now: datetime, rules: RectificationRules,
) -> list[Event]:
    """The unit's 填报人 submits the frozen snapshot `rows` (see `problem_list_rows`); accepted
    when late, and marked late. Resubmission is allowed after a return."""
    _require_reporter_of(actor, cmd.unit, "submitting a monthly list")
    if report.unit != cmd.unit or report.report_id != monthly_list_report_id(cmd.unit, cmd.month):
        raise ValueError("the report state given is not this unit's list for this month")
    if cmd.month not in rules.monthly_list_months:
        raise InvalidCommandError(f"{cmd.month} is not a month of the self-inspection phase",
                                  zh=f"{cmd.month} 不是自查自改阶段须报送问题清单的月份"
                                     f"（须报送：{'、'.join(rules.monthly_list_months)}）。")
    year, month = (int(part) for part in cmd.month.split("-"))
    if rules.local_date(now) < date(year, month, 1):
        raise InvalidCommandError(f"the list for {cmd.month} cannot be submitted before the month",
                                  zh=f"{year}年{month}月的问题清单须在当月开始后报送。")
    _require_submittable(report, "submit the monthly list")
    due = rules.monthly_list_due(cmd.month)
    return [e.MonthlyListSubmitted(
        report_id=report.report_id, unit=cmd.unit, month=cmd.month, version=report.version + 1,
        rows=tuple(sorted(rows, key=lambda row: row.seq_no)), submitted_by=actor.id,
        submitter=actor.name, submitted_at=now, due=due, late=now > due)]


def decide_return_monthly_list(report: ReportState, cmd: c.ReturnMonthlyList, *, actor: Actor,
                               now: datetime) -> list[Event]:
    """The city (city_admin) returns a submitted list with a comment; the unit resubmits."""
    require_commander(actor)
    require_role(actor, (Role.CITY_ADMIN,), "returning a monthly list")
    if report.status is None:
        raise NotFoundError(f"no monthly list {report.report_id} has been submitted",
                            zh="该月问题清单尚未报送，无可退回。")
    if report.status not in (ReportStatus.SUBMITTED, ReportStatus.REVIEWED):
        raise IllegalTransitionError(
            f"cannot return the monthly list: report {report.report_id} is {report.status}",
            zh=f"该问题清单当前为「{REPORT_STATUS_LABELS.get(report.status, '')}」，不能退回。")
    return [e.MonthlyListReturned(report_id=report.report_id, unit=report.unit, month=report.period,
                                  version=report.version, comment=cmd.comment,
                                  returned_by=actor.id)]


def decide_submit_self_inspection_report(
    report: ReportState, cmd: c.SubmitSelfInspectionReport, *, actor: Actor, now: datetime,
    rules: RectificationRules,
) -> list[Event]:
    _require_reporter_of(actor, cmd.unit, "submitting the self-inspection report")
    if report.unit != cmd.unit or report.report_id != self_inspection_report_id(cmd.unit):
        raise ValueError("the report state given is not this unit's self-inspection report")
    _require_submittable(report, "submit the self-inspection report")
    due = rules.due_at(rules.self_inspection_report_due)
    return [e.SelfInspectionReportSubmitted(
        report_id=report.report_id, unit=cmd.unit, version=report.version + 1, text=cmd.text,
        attachment_hashes=cmd.attachment_hashes, submitted_by=actor.id, submitter=actor.name,
        submitted_at=now, due=due, late=now > due)]


def decide_submit_work_plan(
    report: ReportState, cmd: c.SubmitWorkPlan, *, actor: Actor, now: datetime,
    rules: RectificationRules,
) -> list[Event]:
    """工作计划, drawn up at mobilisation (DOMAIN.md §4): filed like the self-inspection report,
    due on the campaign's work-plan deadline, accepted when late and marked late."""
    _require_reporter_of(actor, cmd.unit, "submitting the work plan")
    if report.unit != cmd.unit or report.report_id != work_plan_report_id(cmd.unit):
        raise ValueError("the report state given is not this unit's work plan")
    if rules.work_plan_due is None:
        raise InvalidCommandError("this campaign asks for no work plan",
                                  zh="本次活动未要求报送工作计划。")
    _require_submittable(report, "submit the work plan")
    due = rules.due_at(rules.work_plan_due)
    return [e.WorkPlanSubmitted(
        report_id=report.report_id, unit=cmd.unit, version=report.version + 1, text=cmd.text,
        attachment_hashes=cmd.attachment_hashes, submitted_by=actor.id, submitter=actor.name,
        submitted_at=now, due=due, late=now > due)]


def decide_submit_typical_case(
    report: ReportState, cmd: c.SubmitTypicalCase, *, actor: Actor, now: datetime,
    rules: RectificationRules,
) -> list[Event]:
    _require_reporter_of(actor, cmd.unit, "submitting a typical case")
    if report.unit != cmd.unit or report.report_id != typical_case_report_id(cmd.unit, cmd.case_id):
        raise ValueError("the report state given is not this typical case")
    _require_submittable(report, "submit the typical case")
    due = rules.due_at(rules.typical_case_due)
    return [e.TypicalCaseSubmitted(
        report_id=report.report_id, unit=cmd.unit, version=report.version + 1, title=cmd.title,
        text=cmd.text, attachment_hashes=cmd.attachment_hashes, submitted_by=actor.id,
        submitter=actor.name, submitted_at=now, due=due, late=now > due)]


def decide_review_report(report: ReportState, cmd: c.ReviewReport, *, actor: Actor,
                         now: datetime) -> list[Event]:
    """The unit's 审核人 approves the submitted report, or sends it back with a comment. Never
    the 填报人 who submitted it."""
    require_commander(actor)
    require_own_unit(actor, report.unit)
    require_role(actor, (Role.DISTRICT_REVIEWER,), "reviewing a report")
    if report.status is None:
        raise NotFoundError(f"report {report.report_id} has not been submitted",
                            zh="该材料尚未报送，无可审核。")
    if report.status is not ReportStatus.SUBMITTED:
        raise IllegalTransitionError(
            f"cannot review: report {report.report_id} is {report.status}",
            zh=f"该材料当前为「{REPORT_STATUS_LABELS.get(report.status, '')}」，"
               "只有已报送待审核的材料才能审核。")
    if actor.id == report.submitted_by:
        raise FourEyesError("a report is reviewed by someone other than its submitter",
                            zh="不能审核自己报送的材料，请由本单位其他审核人审核。")
    if not cmd.approved and not cmd.comment:
        raise InvalidCommandError("sending a report back needs a comment",
                                  zh="退回材料须填写退回意见。")
    return [e.ReportReviewed(report_id=report.report_id, unit=report.unit, kind=report.kind,
                             version=report.version, approved=cmd.approved, comment=cmd.comment,
                             reviewed_by=actor.id, reviewer=actor.name, reviewed_at=now)]


# ------------------------------------------------------------------------------------------
# Evolve


def _submitted(report: ReportState, event: e.MonthlyListSubmitted | e.SelfInspectionReportSubmitted
               | e.TypicalCaseSubmitted | e.WorkPlanSubmitted, **fields: Any) -> ReportState:
    first = report.first_submitted_at is None
    return replace(
        report, status=ReportStatus.SUBMITTED, version=event.version,
        submitted_by=event.submitted_by, submitter=event.submitter,
        submitted_at=event.submitted_at,
        first_submitted_at=event.submitted_at if first else report.first_submitted_at,
        due=event.due, late=event.late if first else report.late,
        reviewed_by=None, reviewer=None, reviewed_at=None, **fields)


def evolve_report(report: ReportState, event: Event) -> ReportState:
    match event:
        case e.MonthlyListSubmitted():
            return _submitted(report, event, period=event.month, rows=event.rows)
        case e.SelfInspectionReportSubmitted() | e.WorkPlanSubmitted():
            return _submitted(report, event, text=event.text,
                              attachment_hashes=event.attachment_hashes)
        case e.TypicalCaseSubmitted():
            return _submitted(report, event, title=event.title, text=event.text,
                              attachment_hashes=event.attachment_hashes)
        case e.ReportReviewed():
            if event.approved:
                return replace(report, status=ReportStatus.REVIEWED,
                               reviewed_by=event.reviewed_by, reviewer=event.reviewer,
                               reviewed_at=event.reviewed_at)
            return replace(report, status=ReportStatus.RETURNED,
                           comments=(*report.comments, event.comment))
        case e.MonthlyListReturned():
            return replace(report, status=ReportStatus.RETURNED,
                           comments=(*report.comments, event.comment))
    raise TypeError(f"not a report event: {type(event).__name__}")


def fold_report(report: ReportState, events: Iterable[Event]) -> ReportState:
    for event in events:
        report = evolve_report(report, event)
    return report
