"""The registry's answers as the API document describes them (response models of api.py).

Each model says what a client may rely on; the views in api.py build the dicts, and FastAPI
checks every answer against its model, so the document cannot drift from what is sent.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.api_contract import Answer, Page


class OperatorView(Answer):
    kind: str = Field(description="运营主体类型 (professional, village_committee, none, …)")
    name: str | None
    contract_start: str | None
    contract_end: str | None


class RetirementView(Answer):
    reason_code: str
    reason: str
    retired_on: str


class Project(Answer):
    """A facility project (设施项目) as its stream or its read model says now."""

    project_id: str
    project_type: str
    name: str
    unit: str
    township: str
    township_code: str | None
    village: str | None
    project_year: int
    provincial_key: bool
    operator: OperatorView
    services: list[str]
    meets_service_rule: bool
    status: str = Field(description="运营状态 code")
    status_text: str
    status_reasons: list[str]
    status_reason_text: list[str]
    on_ledger: bool
    ledger_state: str | None = Field(description="open, rectified, or null (not on the 台账)")
    ledger_state_text: str
    assessments: int
    last_assessed_on: str | None
    retirement: RetirementView | None
    version: int


class ProjectPage(Page):
    items: list[Project]


class HistoryEntry(Answer):
    version: int
    event_id: str
    event_type: str
    occurred_at: str | None
    actor: dict[str, Any] | None
    correlation_id: str | None
    data: dict[str, Any]


class ProjectWithHistory(Answer):
    project: Project
    history: list[HistoryEntry]


class Programme(Answer):
    """A home-adaptation programme (适老化改造计划)."""

    programme_id: str
    project_type: str
    name: str
    unit: str
    township: str
    township_code: str | None
    year: int
    households: int
    version: int


class ProgrammeWithHouseholds(Programme):
    households_registered: int
    household_codes: list[str]


class ProgrammePage(Page):
    items: list[Programme]


class Household(Answer):
    """An adapted household, masked: name `王*`, phone `138****0001`, no address."""

    household_id: str
    household_code: str
    village: str
    adaptation_year: int
    items: list[str]
    acceptance_date: str
    name: str
    phone: str | None


class HouseholdPage(Page):
    programme: Programme
    items: list[Household]


class Liaison(Answer):
    """附件1: a unit's responsible leader or liaison; phones masked unless revealed."""

    unit: str
    role: str = Field(description="leader | liaison")
    version: int
    name: str
    gender: str
    position: str
    mobile: str
    office_phone: str | None
    submitted_late: bool
    revealed: bool


class LiaisonList(Answer):
    items: list[Liaison]


class LedgerRectification(Answer):
    problem_id: str
    seq_no: int | None
    verified_at: str | None
    verified_on_text: str | None
    verified_by: str | None
    verifier_role: str | None
    conclusion: str | None
    verification_event_id: str | None


class LedgerEntry(Answer):
    """A 台账 entry: a project not operating or underperforming, with the reason."""

    entry_id: str
    project_id: str
    project_name: str
    unit: str
    reason: str
    reason_text: str
    reason_details: list[str]
    reason_details_text: list[str]
    listed_on: str
    cleared_on: str | None
    state: str = Field(description="open, rectified, cleared or superseded")
    state_text: str
    open: bool
    rectification: LedgerRectification | None


class LedgerPage(Page):
    items: list[LedgerEntry]


class ImportSummary(Answer):
    """What an import did: rows read, records registered, events appended."""

    source_digest: str
    correlation_id: str
    project_rows: int
    household_rows: int
    projects_registered: int
    programmes_registered: int
    households_registered: int
    unchanged: int
    events_appended: int
    streams_written: int
