"""What the task force asks the inspection service to do. Every command names its draw."""
from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, Field

from services.inspection.events import Sha256Hex, TargetKind, VisitOutcome
from shared.messages import Command, Record
from shared.personal_data import FreeText


class DrawCommand(Command):
    """A command on one draw: it decides on that draw's stream."""

    draw_id: str


class FreezeFrame(DrawCommand):
    """Freeze the sampling frame of every stratum from the service's current view of the registry."""

    draw_id: str = Field(min_length=1, pattern=r"^[^|]+$")
    title: FreeText = Field(min_length=1)


class CommitEntropy(DrawCommand):
    """State in advance what the entropy will be; `not_before` is when it can first be known."""

    statement: FreeText = Field(min_length=1)
    not_before: AwareDatetime | None = None


class RevealEntropy(DrawCommand):
    entropy: str = Field(min_length=1)


class DrawSample(DrawCommand):
    """Draw every stratum with the revealed entropy (a step of RevealEntropy, not sent alone)."""


class AddDiscretionaryPick(DrawCommand):
    project_id: str = Field(min_length=1)
    reason: FreeText = Field(min_length=1)


class ReplaceHousehold(DrawCommand):
    """A sampled household cannot be visited (无法入户); the next pick of the sequence replaces it."""

    household_code: str = Field(min_length=1)
    reason_code: str = Field(min_length=1)
    note: FreeText = ""


class ScheduleVisit(DrawCommand):
    visit_id: str = Field(min_length=1)
    target_kind: TargetKind
    target_id: str = Field(min_length=1)
    scheduled_for: dt.date
    inspector_ids: list[str] = Field(min_length=1)


class FindingDraft(Record):
    text: FreeText = Field(min_length=1)
    deadline: dt.date


class RecordVisit(DrawCommand):
    """The outcome of a scheduled visit; `problems_found` comes with at least one finding."""

    visit_id: str
    outcome: VisitOutcome
    visited_on: dt.date
    inspector_ids: list[str] = Field(min_length=1)
    checklist: dict[str, str] = {}
    unable_reason_code: str | None = None
    notes: FreeText = ""
    photo_hashes: list[Sha256Hex] = []
    findings: list[FindingDraft] = []


class RecordFinding(DrawCommand):
    """A further finding on a visit already recorded as `problems_found`."""

    visit_id: str
    text: str = Field(min_length=1)
    deadline: dt.date
