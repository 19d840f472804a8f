"""What the task force asks the inspection service to do. Every command names its draw."""
from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.inspection.events import Sha256Hex, TargetKind, VisitOutcome
from shared.messages import Command


class FreezeFrame(Command):
    """Freeze the sampling frame of every stratum from the service's current view of the registry."""

    draw_id: str = Field(min_length=1, pattern=r"^[^|]+$")
    title: str = Field(min_length=1)


class CommitEntropy(Command):
    """State in advance what the entropy will be; `not_before` is when it can first be known."""

    draw_id: str
    statement: str = Field(min_length=1)
    not_before: AwareDatetime | None = None


class RevealEntropy(Command):
    draw_id: str
    entropy: str = Field(min_length=1)


class DrawSample(Command):
    draw_id: str


class AddDiscretionaryPick(Command):
    draw_id: str
    project_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class ReplaceHousehold(Command):
    """A sampled household cannot be visited (无法入户); the next pick of the sequence replaces it."""

    draw_id: str
    household_code: str = Field(min_length=1)
    reason_code: str = Field(min_length=1)
    note: str = ""


class ScheduleVisit(Command):
    draw_id: str
    visit_id: str = Field(min_length=1)
    target_kind: TargetKind
    target_id: str = Field(min_length=1)
    scheduled_for: dt.date
    inspector_ids: list[str] = Field(min_length=1)


class FindingDraft(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(min_length=1)
    deadline: dt.date


class RecordVisit(Command):
    """The outcome of a scheduled visit; `problems_found` comes with at least one finding."""

    draw_id: str
    visit_id: str
    outcome: VisitOutcome
    visited_on: dt.date
    inspector_ids: list[str] = Field(min_length=1)
    checklist: dict[str, str] = {}
    unable_reason_code: str | None = None
    notes: str = ""
    photo_hashes: list[Sha256Hex] = []
    findings: list[FindingDraft] = []


class RecordFinding(Command):
    """A further finding on a visit already recorded as `problems_found`."""

    draw_id: str
    visit_id: str
    text: str = Field(min_length=1)
    deadline: dt.date
