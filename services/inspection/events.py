"""The inspection service's public contract: what happened to a draw, its visits and findings.

One stream per draw (`draw_stream`). Events carry codes, never names, addresses or phones of
older people: a household is its household code.
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from shared.messages import Event, EventContract, Record as KernelRecord

SHA256_HEX = r"^[0-9a-f]{64}$"
Sha256Hex = Annotated[str, Field(pattern=SHA256_HEX)]


def draw_stream(draw_id: str) -> str:
    """The one stream of a draw: its frame, entropy, sample, visits and findings."""
    return f"draw-{draw_id}"


Record = KernelRecord  # frozen, no unknown fields, no control characters in text


class VisitOutcome(StrEnum):
    PASSED = "passed"                    # 合格
    PROBLEMS_FOUND = "problems_found"    # 发现问题
    UNABLE_TO_ENTER = "unable_to_enter"  # 无法入户 (households only)


class TargetKind(StrEnum):
    PROJECT = "project"
    HOUSEHOLD = "household"


class ExcludedItem(Record):
    id: str
    code: str   # retired | not_provincial_key | programme_retired
    detail: str = ""


class SampleShare(Record):
    """The share of an R2 frame to sample, as the campaign file states it (in lowest terms)."""

    numerator: int = Field(ge=1)
    denominator: int = Field(ge=1)


class FrozenStratum(Record):
    """One stratum's frame as frozen: the fields of its frame object (docs/sampling.md) + digest.

    `share` is there exactly when the frame object has it: an R2 frame sampling another share
    than one half. An R2 stratum without it samples one half (every draw frozen before shares
    were recorded)."""

    stratum: str
    unit: str
    project_type: str
    rule: str
    items: list[str] = []
    townships: dict[str, list[str]] = {}
    min_households: int | None = None
    households_per_township: int | None = None
    share: SampleShare | None = None
    excluded: list[ExcludedItem] = []
    frame_digest: str = Field(pattern=SHA256_HEX)


class ProjectLabel(Record):
    """What the inspection service knows of a project, for lists and findings (no personal data)."""

    project_id: str
    name: str = ""
    unit: str
    township: str
    project_type: str
    project_year: int | None = None


class HouseholdLabel(Record):
    household_code: str
    project_id: str
    unit: str
    township: str


class FrameFrozen(Event):
    type_name: ClassVar[str] = "inspection.FrameFrozen"

    draw_id: str
    title: str
    algorithm_version: str
    units: list[str]
    strata: list[FrozenStratum]
    frames_digest: str = Field(pattern=SHA256_HEX)
    projects: list[ProjectLabel]
    households: list[HouseholdLabel]
    frozen_at: AwareDatetime


class EntropyCommitted(Event):
    """What the entropy will be, stated before it exists (e.g. "福彩3D numbers of 2024-05-08")."""

    type_name: ClassVar[str] = "inspection.EntropyCommitted"

    draw_id: str
    statement: str
    not_before: AwareDatetime | None = None
    committed_at: AwareDatetime


class EntropyRevealed(Event):
    type_name: ClassVar[str] = "inspection.EntropyRevealed"

    draw_id: str
    entropy: str
    revealed_at: AwareDatetime


class StratumOutcome(Record):
    stratum: str
    unit: str
    project_type: str
    rule: str
    frame_digest: str = Field(pattern=SHA256_HEX)
    frame_size: int
    sample_size: int
    picks: list[str]
    replacements: list[str]
    no_eligible_project: bool   # the explicit 无符合条件项目 record of an empty stratum
    insufficient_sample: bool = False   # 样本不足
    township: str | None = None
    township_order: list[str] = []


class SampleDrawn(Event):
    type_name: ClassVar[str] = "inspection.SampleDrawn"

    draw_id: str
    algorithm_version: str
    strata: list[StratumOutcome]
    drawn_at: AwareDatetime


class DiscretionaryPickAdded(Event):
    type_name: ClassVar[str] = "inspection.DiscretionaryPickAdded"

    draw_id: str
    project: ProjectLabel
    reason: str
    added_at: AwareDatetime


class HouseholdReplaced(Event):
    """无法入户: the household leaves the sample and the next pick of the same sequence enters."""

    type_name: ClassVar[str] = "inspection.HouseholdReplaced"

    draw_id: str
    unit: str
    stratum: str
    replaced_household: str
    replacement_household: str
    reason_code: str
    note: str = ""
    replaced_at: AwareDatetime


class VisitScheduled(Event):
    type_name: ClassVar[str] = "inspection.VisitScheduled"

    draw_id: str
    visit_id: str
    target_kind: TargetKind
    target_id: str
    unit: str
    project_type: str
    scheduled_for: dt.date
    inspector_ids: list[str]


class ChecklistAnswer(Record):
    item: str
    answer: str   # yes | no | not_applicable


class VisitRecorded(Event):
    type_name: ClassVar[str] = "inspection.VisitRecorded"

    draw_id: str
    visit_id: str
    target_kind: TargetKind
    target_id: str
    unit: str
    project_type: str
    outcome: VisitOutcome
    unable_reason_code: str | None = None
    inspector_ids: list[str]
    visited_on: dt.date
    checklist: list[ChecklistAnswer]
    notes: str = ""
    photo_hashes: list[Sha256Hex] = []


class FindingRecorded(Event):
    """A problem the city inspection found; rectification opens a problem item (source = city)."""

    type_name: ClassVar[str] = "inspection.FindingRecorded"

    finding_id: str
    draw_id: str
    visit_id: str
    project_id: str
    household_code: str | None = None
    unit: str
    project_name: str
    township: str
    project_year: int | None = None
    project_type: str
    text: str
    deadline: dt.date
    found_on: dt.date


ALL_EVENTS: tuple[type[Event], ...] = (
    FrameFrozen, EntropyCommitted, EntropyRevealed, SampleDrawn, DiscretionaryPickAdded,
    HouseholdReplaced, VisitScheduled, VisitRecorded, FindingRecorded,
)

# The inspection service's published contract: its name, the categories only it writes, its events.
CONTRACT = EventContract(service="inspection", categories=("frame", "draw", "visit"),
                         events=ALL_EVENTS)
