"""The rectification service's answers as the API document describes them (response models of
api.py). Each declares what a client may rely on; the rest of a view passes through, and FastAPI
checks every answer against its model."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.api_contract import Answer, Page


class Problem(Answer):
    """A problem item (问题) with its overdue flag, traffic light and 责任人."""

    problem_id: str | None
    status: str | None = Field(description="registered, in_progress, close_out_requested, …")
    status_label: str
    unit: str
    unit_name: str
    seq_no: int = Field(description="the unit's 序号")
    project_id: str
    project_name: str
    description: str
    deadline: str | None
    deadline_text: str | None
    source: str | None
    overdue: bool
    light: str | None
    evidence_reuse_flagged: bool
    responsible_person_effective: str


class ProblemWithHistory(Problem):
    history: list[dict[str, Any]] = Field(description="every event: who, when; 全部记录")


class ProblemPage(Page):
    items: list[Problem]
    as_of: str


class Reopened(Answer):
    original: Problem
    problem: Problem


class EvidenceUse(Answer):
    content_hash: str
    filed_for: list[dict[str, Any]]


class ProjectView(Answer):
    project_id: str
    project_type: str
    name: str
    unit: str
    township: str
    project_year: int


class ProjectList(Answer):
    projects: list[ProjectView]


class Report(Answer):
    """A report (月度清单, 自查报告, 工作计划, 典型案例) and where it stands."""

    report_id: str
    kind: str
    unit: str
    period: str
    status: str | None
    status_label: str
    version: int
    due: str | None
    late: bool


class ReportList(Answer):
    reports: list[Report]


class Closure(Answer):
    closure_rate: str | None = Field(description="销号率 as counts (`3/5`)")
    closure_percent: str | None
    closure_closed: int
    closure_counted: int
    closure_text: str


class UnitProgress(Closure):
    unit: str
    unit_name: str
    registered: int
    withdrawn: int
    open: int
    closed: int
    overdue: int
    reopened: int
    late_reports: int
    missing_reports: int
    light: str


class Progress(Answer):
    as_of: str
    units: list[UnitProgress]


class Deduction(Answer):
    """A deduction (扣分) or refund with its rule, what it was for and when."""

    event_id: str
    unit: str
    points: str
    rule_id: str
    trigger_ref: str
    reason: str
    decided_by: str
    recorded_at: str | None


class DeductionWithRefund(Deduction):
    refunded: Deduction | None


class UnitScore(Answer):
    unit: str
    unit_name: str
    deducted: str
    deductions: list[DeductionWithRefund]


class BoardRow(Closure):
    rank: int
    unit: str
    unit_name: str
    score: str
    deducted: str
    progress: UnitProgress
    deductions: list[DeductionWithRefund]


class ScoreBoard(Answer):
    as_of: str
    order: str = Field(description="how the units are ranked, in Chinese; 排名规则")
    board: list[BoardRow]


class CheckResult(Answer):
    deducted: list[Deduction]
    refunded: list[Deduction]


class PublicRow(Closure):
    rank: int
    unit: str
    unit_name: str
    score: str
    registered: int
    open: int
    closed: int
    overdue: int
    reopened: int
    light: str


class PublicResults(Answer):
    as_of: str
    order: str
    units: list[PublicRow]


class Rules(Answer):
    campaign: str
    rectification: dict[str, Any]
    deduction_rules: list[dict[str, Any]]
    not_applied: list[dict[str, Any]]
    yellow_working_days: int
