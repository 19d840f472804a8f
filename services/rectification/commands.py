"""Commands the rectification service accepts: the HTTP routes build most of them, the reactions
to other services' events (`OpenLedgerItem`, `OpenFindingItem`) and the deduction check
(`ApplyDeductions`) the rest. handlers.py says how each is decided.

Ids that must survive a retry (`problem_id`, `case_id`, `deduction_id`) are chosen by the caller:
a retried command with the same id is recognised instead of creating a second item. What the
service knows better than the caller (the project's name and unit, the 序号, the snapshot rows of a
monthly list, the due dates) is not in the command; the domain functions take it as arguments.
"""
from __future__ import annotations

import uuid
from datetime import date

from pydantic import ConfigDict, Field, model_validator

from shared.messages import Command
from shared.personal_data import FreeText

from .events import DECIMAL_PATTERN, ContentHash, DeadlineKind, ProblemSource


class _Command(Command):
    # Whitespace-only text is no reason at all: strip before the min_length checks.
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class RegisterProblem(_Command):
    """登记: a new row of the problem list. `deadline` is required for kind "date" and must be
    omitted for 立行立改 ("immediate"), whose date the domain computes from the registration day."""

    model_config = ConfigDict(json_schema_extra={"examples": [{  # for the API document only
        "problem_id": "0b9f3c1e-5d2a-4f7b-9c1d-2e3f4a5b6c7d", "project_id": "p-echeng-1",
        "description": "未开展助餐服务(示例)", "deadline": "2024-05-07",
        "responsible_person": "张某(示例)", "source": "self_inspection"}]})

    problem_id: uuid.UUID
    project_id: str = Field(min_length=1)
    description: FreeText = Field(min_length=1)
    deadline_kind: DeadlineKind = DeadlineKind.DATE
    deadline: date | None = None
    responsible_person: str = ""
    source: ProblemSource = ProblemSource.SELF_INSPECTION
    source_ref: str | None = None
    ledger_reason: str | None = None

    @model_validator(mode="after")
    def _deadline_matches_kind(self) -> RegisterProblem:
        if self.deadline_kind is DeadlineKind.DATE and self.deadline is None:
            raise ValueError("a 整改限期 date is required unless the item is 立行立改 (immediate)")
        if self.deadline_kind is DeadlineKind.IMMEDIATE and self.deadline is not None:
            raise ValueError("an immediate (立行立改) item takes no date: "
                             "it is due N days after registration")
        return self


class StartRectification(_Command):
    problem_id: uuid.UUID
    plan: FreeText = Field(min_length=1)
    responsible_person: str | None = None   # None keeps the registered 责任人


class RequestCloseOut(_Command):
    problem_id: uuid.UUID
    evidence_text: FreeText = Field(min_length=1)
    attachment_hashes: tuple[ContentHash, ...] = Field(min_length=1)


class VerifyCloseOut(_Command):
    problem_id: uuid.UUID
    conclusion: FreeText = Field(min_length=1)


class ReturnCloseOut(_Command):
    problem_id: uuid.UUID
    reason: FreeText = Field(min_length=1)


class RequestExtension(_Command):
    problem_id: uuid.UUID
    new_deadline: date
    reason: FreeText = Field(min_length=1)


class DecideExtension(_Command):
    problem_id: uuid.UUID
    approved: bool
    reason: FreeText = Field(min_length=1)


class ReopenProblem(_Command):
    """反弹: the closed item `problem_id` was found again. A new item `new_problem_id` is registered,
    linked to it; `description` defaults to the original's."""

    problem_id: uuid.UUID
    new_problem_id: uuid.UUID
    reason: FreeText = Field(min_length=1)
    description: FreeText | None = None
    deadline_kind: DeadlineKind = DeadlineKind.IMMEDIATE
    deadline: date | None = None

    @model_validator(mode="after")
    def _deadline_matches_kind(self) -> ReopenProblem:
        if self.deadline_kind is DeadlineKind.DATE and self.deadline is None:
            raise ValueError("a 整改限期 date is required unless the item is 立行立改 (immediate)")
        if self.deadline_kind is DeadlineKind.IMMEDIATE and self.deadline is not None:
            raise ValueError("an immediate (立行立改) item takes no date")
        return self


class WithdrawProblem(_Command):
    """撤销: the acting official approves the withdrawal and is recorded as the approver."""

    problem_id: uuid.UUID
    reason: FreeText = Field(min_length=1)


class OpenLedgerItem(Command):
    """A registry 台账 entry (LedgerEntryAdded) opens an automatic item (source = ledger), unless
    one is still open for the same project and reason. The entry carries everything 附件2 needs
    about the project, as of the moment it was listed. Sent by the on-registry reaction, as the
    system; the fields are the event's, as it sent them."""

    entry_id: str
    project_id: str
    project_name: str
    project_year: int
    unit: str
    township: str
    reason: str
    reason_details: tuple[str, ...] = ()


class OpenFindingItem(Command):
    """An inspection finding (FindingRecorded) opens a city-found item. The project is this
    service's view of it when it has one, else the finding's own project fields (the registry's
    events travel on another queue and may not have arrived yet). Sent by the on-inspection
    reaction, as the system."""

    finding_id: str
    project_id: str
    unit: str
    project_name: str
    township: str
    project_year: int | None = None
    text: str                    # the finding's text (with the household's code, never its name)
    deadline: date | None = None


class SubmitMonthlyList(_Command):
    unit: str
    month: str = Field(pattern=r"^\d{4}-\d{2}$")


class ReturnMonthlyList(_Command):
    unit: str
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    comment: FreeText = Field(min_length=1)


class SubmitSelfInspectionReport(_Command):
    unit: str
    text: FreeText = Field(min_length=1)
    attachment_hashes: tuple[ContentHash, ...] = ()


class SubmitWorkPlan(_Command):
    """工作计划: the unit's plan for the campaign, due with the liaisons (phase 1)."""

    unit: str
    text: FreeText = Field(min_length=1)
    attachment_hashes: tuple[ContentHash, ...] = ()


class SubmitTypicalCase(_Command):
    unit: str
    case_id: uuid.UUID
    title: FreeText = Field(min_length=1)
    text: FreeText = Field(min_length=1)
    attachment_hashes: tuple[ContentHash, ...] = ()


class ReviewReport(_Command):
    report_id: str
    approved: bool
    comment: FreeText = ""


class DeductPoints(_Command):
    """A discretionary deduction (酌情扣分) by city_admin."""

    unit: str
    deduction_id: uuid.UUID
    points: str = Field(pattern=DECIMAL_PATTERN)
    reason: FreeText = Field(min_length=1)


class ApplyDeductions(_Command):
    """Apply the campaign's deduction rules to one unit, as of now (the periodic check and
    `POST /scores/check` send one per unit). Each occurrence is deducted once, ever."""

    unit: str
