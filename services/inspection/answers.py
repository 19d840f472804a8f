"""The inspection service's answers as the API document describes them (response models of
api.py). Each declares what a client may rely on; a read model's further columns pass through,
and FastAPI checks every answer against its model."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.api_contract import Answer


class Stratum(Answer):
    """One stratum of a draw (unit × project type) with its frame and, once drawn, its sample."""

    stratum: str
    unit: str
    project_type: str
    rule: str
    frame_digest: str
    frame_size: int


class Draw(Answer):
    """A draw (抽签) as its stream says now."""

    draw_id: str
    title: str
    stage: str = Field(description="frozen, committed, drawn")
    units: list[str]
    frames_digest: str | None
    entropy_statement: str | None
    entropy: str | None
    strata: list[Stratum]
    discretionary: list[dict[str, Any]]
    active_households: dict[str, list[str]]
    version: int


class DrawRow(Answer):
    """A draw as the read model lists it."""

    draw_id: str
    title: str
    stage: str
    units: list[str]


class DrawWithStrata(DrawRow):
    strata: list[Stratum]


class DiscretionaryPick(Answer):
    draw_id: str
    project: dict[str, Any]
    reason: str
    version: int


class HouseholdReplacement(Answer):
    draw_id: str
    unit: str
    stratum: str
    replaced_household: str
    replacement_household: str
    reason_code: str
    active_households: list[str]
    version: int


class Visit(Answer):
    visit_id: str
    target_kind: str
    target_id: str
    unit: str
    project_type: str
    scheduled_for: str
    inspector_ids: list[str]
    outcome: str | None
    visited_on: str | None


class ScheduledVisit(Visit):
    unable_reason_code: str | None
    finding_ids: list[str]
    version: int


class Finding(Answer):
    """A finding (发现的问题) recorded on a visit."""

    finding_id: str
    visit_id: str
    unit: str
    text: str


class RecordedFinding(Finding):
    version: int


class RecordedVisit(ScheduledVisit):
    findings: list[Finding]


class UnitPicks(Answer):
    unit: str
    picks: list[dict[str, Any]]


class Picks(Answer):
    draw_id: str
    units: list[UnitPicks]


class UnitVisitProgress(Answer):
    unit: str
    sampled: int
    scheduled: int
    inspected: int
    passed: int
    problems_found: int
    unable_to_enter: int
    findings: int


class DrawList(Answer):
    """The 抽查名单 document that `lookback inspection verify-draw` recomputes offline."""

    format: str
    algorithm_version: str
    draw_id: str
    title: str
    units: list[str]
    entropy_statement: str | None
    entropy: str | None
    frames_digest: str | None
    frame_digests: dict[str, str]
    strata: list[dict[str, Any]]
    discretionary: list[dict[str, Any]]
    labels: dict[str, Any]


class RegistryProject(Answer):
    project_id: str
    kind: str
    project_type: str
    unit: str
    township: str
    name: str


class TownshipHouseholds(Answer):
    unit: str
    township: str
    households: int
    household_codes: list[str]
