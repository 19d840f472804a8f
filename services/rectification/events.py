"""The rectification service's public contract: the facts it records about problem items, unit
reports and deductions.

Other services (the notifier above all) import this module and nothing else of ours, so every
event carries the reporting unit and, where there is one, the deadline: a consumer never needs our
streams to compute a reminder. Stored type names are stable strings (`rectification.<Name>`);
renaming a class must never change them.

Conventions:
- `problem_id` is a UUID; the item's stream is `problem-<problem_id>` (see
  `domain.stream_id_for`). Every problem event carries `problem_id` and `unit`.
- Actor ids appear in payloads where a later rule needs them (four-eyes compares the verifier with
  the requester); the full actor (id, name, role, unit) is always in the event metadata too.
- Deadlines are local dates (Asia/Shanghai); "due on D" means on or before D 23:59:59 local time.
- Points are decimal strings ("2", "0.5"): events never hold floats.
- No personal data of older people: descriptions are about facilities; the names here are
  officials' (责任人, 填报人, 审核人), which the notice itself prints on the forms.
"""
from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field

from shared.messages import Event, EventContract, Record

CONTENT_HASH_PATTERN = r"^[0-9a-f]{64}$"
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
# A lowercase hex SHA-256 of an attachment's bytes (the file itself lives in a content store).
ContentHash = Annotated[str, Field(pattern=CONTENT_HASH_PATTERN)]


class ProblemSource(StrEnum):
    """Where an item was found: the unit's own self-inspection, the 台账 (a project becoming not
    operating / underperforming), or a city inspection finding. Decides who may verify it."""

    SELF_INSPECTION = "self_inspection"
    LEDGER = "ledger"
    CITY = "city"


class DeadlineKind(StrEnum):
    """整改限期: a date, or 立行立改 (immediately; due a configured number of days after
    registration, the resulting date is stored in `deadline` all the same)."""

    DATE = "date"
    IMMEDIATE = "immediate"


class ReportKind(StrEnum):
    MONTHLY_LIST = "monthly_list"
    SELF_INSPECTION_REPORT = "self_inspection_report"
    TYPICAL_CASE = "typical_case"
    WORK_PLAN = "work_plan"


class _Fact(Event):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProblemListRow(Record):
    """One row of 附件2 as frozen into a monthly list (plus the id and status it had then)."""

    problem_id: uuid.UUID
    seq_no: int = Field(ge=1)               # 序号
    township: str                           # 区域
    project_name: str                       # 项目名称
    project_year: int                       # 项目年份
    description: str                        # 存在的问题隐患
    deadline: date                          # 整改限期 (the date, also for 立行立改)
    deadline_kind: DeadlineKind
    responsible_person: str                 # 责任人
    status: str                             # domain.ProblemStatus value at snapshot time


# ------------------------------------------------------------------------------------------
# Problem items (stream `problem-<problem_id>`)


class ProblemRegistered(_Fact):
    type_name: ClassVar[str] = "rectification.ProblemRegistered"

    problem_id: uuid.UUID
    unit: str
    seq_no: int = Field(ge=1)
    project_id: str
    project_name: str
    township: str
    project_year: int
    description: str
    deadline: date
    deadline_kind: DeadlineKind
    responsible_person: str
    source: ProblemSource
    source_ref: str | None = None           # ledger entry event id / inspection finding id
    ledger_reason: str | None = None        # registry's reason code, for a ledger item
    reopened_from: uuid.UUID | None = None  # set on a 反弹 item: the closed item it re-opens
    registered_by: str                      # actor id (four-eyes on withdrawal)
    registered_at: AwareDatetime


class RectificationStarted(_Fact):
    type_name: ClassVar[str] = "rectification.RectificationStarted"

    problem_id: uuid.UUID
    unit: str
    plan: str
    responsible_person: str                 # may name the 责任人 (automatic items start without)
    started_by: str


class CloseOutRequested(_Fact):
    type_name: ClassVar[str] = "rectification.CloseOutRequested"

    problem_id: uuid.UUID
    unit: str
    evidence_text: str
    attachment_hashes: tuple[ContentHash, ...]
    requested_by: str                       # actor id; the verifier must be someone else
    requested_at: AwareDatetime
    # The requester's role: when the unit's own reviewer asks, the city decides (four-eyes in a
    # unit with one reviewer). None on events recorded before it was carried: role unknown.
    requester_role: str | None = None


class CloseOutVerified(_Fact):
    """已销号. 谁验收谁负责: the verifier is recorded with the role that entitled them."""

    type_name: ClassVar[str] = "rectification.CloseOutVerified"

    problem_id: uuid.UUID
    unit: str
    verified_by: str
    verifier_role: str
    conclusion: str
    verified_at: AwareDatetime


class CloseOutReturned(_Fact):
    """退回: back to in_rectification, with the reason."""

    type_name: ClassVar[str] = "rectification.CloseOutReturned"

    problem_id: uuid.UUID
    unit: str
    reason: str
    returned_by: str


class ExtensionRequested(_Fact):
    type_name: ClassVar[str] = "rectification.ExtensionRequested"

    problem_id: uuid.UUID
    unit: str
    current_deadline: date
    new_deadline: date
    reason: str
    requested_by: str


class ExtensionDecided(_Fact):
    """`deadline` is the item's deadline after the decision: the new one if approved, the old one
    if rejected (so a reminder service can always take it as is)."""

    type_name: ClassVar[str] = "rectification.ExtensionDecided"

    problem_id: uuid.UUID
    unit: str
    approved: bool
    requested_deadline: date
    deadline: date
    reason: str
    decided_by: str


class ProblemReopened(_Fact):
    """反弹, on the ORIGINAL item's stream; the new item is registered with `reopened_from`."""

    type_name: ClassVar[str] = "rectification.ProblemReopened"

    problem_id: uuid.UUID
    unit: str
    new_problem_id: uuid.UUID
    reason: str
    reopened_by: str


class ProblemWithdrawn(_Fact):
    """撤销: registered in error. The item stays in history (and keeps its 序号)."""

    type_name: ClassVar[str] = "rectification.ProblemWithdrawn"

    problem_id: uuid.UUID
    unit: str
    reason: str
    approved_by: str
    approver: str                           # the approving official's name
    withdrawn_at: AwareDatetime


class EvidenceReuseFlagged(_Fact):
    """纸面销号 warning: an attachment of this close-out was already filed for other items."""

    type_name: ClassVar[str] = "rectification.EvidenceReuseFlagged"

    problem_id: uuid.UUID
    unit: str
    attachment_hash: ContentHash
    other_problem_ids: tuple[uuid.UUID, ...]


# ------------------------------------------------------------------------------------------
# 序号 allocation (stream `unit-<unit code>`)


class SeqNoAllocated(_Fact):
    """One 序号 handed out by a unit's counter; appended atomically with the ProblemRegistered."""

    type_name: ClassVar[str] = "rectification.SeqNoAllocated"

    unit: str
    seq_no: int = Field(ge=1)
    problem_id: uuid.UUID


# ------------------------------------------------------------------------------------------
# Reports (stream `report-<report_id>`)


class MonthlyListSubmitted(_Fact):
    """A frozen snapshot of the unit's items, submitted by its 填报人; `version` counts
    resubmissions after a return. `late`: this submission came after `due`."""

    type_name: ClassVar[str] = "rectification.MonthlyListSubmitted"

    report_id: str
    unit: str
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    version: int = Field(ge=1)
    rows: tuple[ProblemListRow, ...]
    submitted_by: str
    submitter: str                          # 填报人 name, printed on the export
    submitted_at: AwareDatetime
    due: AwareDatetime
    late: bool


class MonthlyListReturned(_Fact):
    type_name: ClassVar[str] = "rectification.MonthlyListReturned"

    report_id: str
    unit: str
    month: str
    version: int
    comment: str
    returned_by: str


class SelfInspectionReportSubmitted(_Fact):
    type_name: ClassVar[str] = "rectification.SelfInspectionReportSubmitted"

    report_id: str
    unit: str
    version: int = Field(ge=1)
    text: str
    attachment_hashes: tuple[ContentHash, ...]
    submitted_by: str
    submitter: str
    submitted_at: AwareDatetime
    due: AwareDatetime
    late: bool


class WorkPlanSubmitted(_Fact):
    """工作计划 (phase 1, due with the liaisons), filed by the unit's 填报人."""

    type_name: ClassVar[str] = "rectification.WorkPlanSubmitted"

    report_id: str
    unit: str
    version: int = Field(ge=1)
    text: str
    attachment_hashes: tuple[ContentHash, ...]
    submitted_by: str
    submitter: str
    submitted_at: AwareDatetime
    due: AwareDatetime
    late: bool


class TypicalCaseSubmitted(_Fact):
    type_name: ClassVar[str] = "rectification.TypicalCaseSubmitted"

    report_id: str
    unit: str
    version: int = Field(ge=1)
    title: str
    text: str
    attachment_hashes: tuple[ContentHash, ...]
    submitted_by: str
    submitter: str
    submitted_at: AwareDatetime
    due: AwareDatetime
    late: bool


class ReportReviewed(_Fact):
    """The unit's 审核人 reviewed a submitted report (four-eyes with the 填报人): approved, or sent
    back to the reporter with a comment."""

    type_name: ClassVar[str] = "rectification.ReportReviewed"

    report_id: str
    unit: str
    kind: ReportKind
    version: int
    approved: bool
    comment: str
    reviewed_by: str
    reviewer: str                           # 审核人 name, printed on the export
    reviewed_at: AwareDatetime


# ------------------------------------------------------------------------------------------
# Scores (stream `score-<unit>`)


class PointsDeducted(_Fact):
    """扣分. (`rule_id`, `trigger_ref`) identifies the deduction: the same pair never deducts twice.
    Discretionary deductions have rule_id "discretionary" and the city_admin's reason. `reason`
    is Chinese (the rule's description from the campaign file, then what happened); `trigger`,
    `deadline` (a campaign deadline code) and `problem_id` say what it was for (absent on
    deductions recorded before they were carried, and on discretionary ones)."""

    type_name: ClassVar[str] = "rectification.PointsDeducted"

    unit: str
    points: str = Field(pattern=DECIMAL_PATTERN)
    rule_id: str
    trigger_ref: str
    reason: str
    discretionary: bool = False
    decided_by: str
    trigger: str | None = None
    deadline: str | None = None
    problem_id: uuid.UUID | None = None


class PointsRefunded(_Fact):
    """退还扣分: a compensating event for the deduction (`rule_id`, `trigger_ref`) whose occurrence
    no longer holds (an extension approved after it, an overdue item withdrawn, a filing found on
    time). The deduction stays in the log; the score counts it no more. `reason` is Chinese."""

    type_name: ClassVar[str] = "rectification.PointsRefunded"

    unit: str
    points: str = Field(pattern=DECIMAL_PATTERN)
    rule_id: str
    trigger_ref: str
    deduction_event_id: uuid.UUID
    reason: str
    decided_by: str


# Not annotated as tuple[type[Event], ...]: their precise types let isinstance() narrow an event
# to the classes, so the stream an event routes to is read from attributes the checker knows.
PROBLEM_EVENTS = (
    ProblemRegistered, RectificationStarted, CloseOutRequested, CloseOutVerified, CloseOutReturned,
    ExtensionRequested, ExtensionDecided, ProblemReopened, ProblemWithdrawn, EvidenceReuseFlagged,
)
REPORT_EVENTS = (
    MonthlyListSubmitted, MonthlyListReturned, SelfInspectionReportSubmitted, TypicalCaseSubmitted,
    ReportReviewed, WorkPlanSubmitted,
)
SCORE_EVENTS = (PointsDeducted, PointsRefunded)
ALL_EVENTS: tuple[type[Event], ...] = (
    *PROBLEM_EVENTS, SeqNoAllocated, *REPORT_EVENTS, *SCORE_EVENTS,
)

# The rectification service's published contract: its name, the categories only it writes, its
# events.
CONTRACT = EventContract(service="rectification", categories=("problem", "unit", "report", "score"),
                         events=ALL_EVENTS)
REGISTRY = CONTRACT.registry()
