"""A draw's state: everything its one stream says, folded. No decisions here, only `evolve`.

The stream holds the frame, the entropy, the sample, the discretionary picks, the replacements,
the visits and the findings, so every rule that needs the sample (only sampled targets are
visited, a household is replaced by the next pick of its own sequence) sees one consistent state.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from services.inspection import sampling
from services.inspection.events import (
    DiscretionaryPickAdded,
    EntropyCommitted,
    EntropyRevealed,
    FindingRecorded,
    FrameFrozen,
    FrozenStratum,
    HouseholdLabel,
    HouseholdReplaced,
    ProjectLabel,
    SampleDrawn,
    StratumOutcome,
    TargetKind,
    VisitOutcome,
    VisitRecorded,
    VisitScheduled,
)
from shared.messages import Event


class Stage(IntEnum):
    NEW = 0
    FROZEN = 1
    COMMITTED = 2
    REVEALED = 3
    DRAWN = 4


@dataclass(frozen=True, slots=True)
class Visit:
    visit_id: str
    target_kind: TargetKind
    target_id: str
    unit: str
    project_type: str
    scheduled_for: dt.date
    inspector_ids: tuple[str, ...]
    outcome: VisitOutcome | None = None
    visited_on: dt.date | None = None
    unable_reason_code: str | None = None
    finding_ids: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.outcome is None

    @property
    def inspected(self) -> bool:
        return self.outcome in (VisitOutcome.PASSED, VisitOutcome.PROBLEMS_FOUND)


@dataclass(frozen=True, slots=True)
class DrawState:
    """Everything one draw stream says, folded. Mappings are replaced, never mutated."""

    draw_id: str | None = None
    stage: Stage = Stage.NEW
    title: str = ""
    units: tuple[str, ...] = ()
    frames: tuple[sampling.StratumFrame, ...] = ()
    stated_digests: Mapping[str, str] = field(default_factory=dict)
    frames_digest: str | None = None
    projects: Mapping[str, ProjectLabel] = field(default_factory=dict)
    households: Mapping[str, HouseholdLabel] = field(default_factory=dict)
    statement: str | None = None
    not_before: dt.datetime | None = None
    entropy: str | None = None
    frozen_at: dt.datetime | None = None
    committed_at: dt.datetime | None = None
    revealed_at: dt.datetime | None = None
    drawn_at: dt.datetime | None = None
    outcomes: Mapping[str, StratumOutcome] = field(default_factory=dict)
    discretionary: Mapping[str, str] = field(default_factory=dict)   # project id -> reason
    active_households: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per unit
    replacements_used: Mapping[str, int] = field(default_factory=dict)  # per unit
    replaced: Mapping[str, str] = field(default_factory=dict)  # household code -> reason code
    replacement_log: Mapping[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    visits: Mapping[str, Visit] = field(default_factory=dict)
    findings: Mapping[str, FindingRecorded] = field(default_factory=dict)

    def sampled_projects(self) -> dict[str, str]:
        """Sampled facility projects: id -> how (rule code, or "discretionary")."""
        picked = {pid: outcome.rule for outcome in self.outcomes.values()
                  if outcome.rule != sampling.Rule.TOWNSHIP_HOUSEHOLDS for pid in outcome.picks}
        picked.update({pid: "discretionary" for pid in self.discretionary})
        return picked

    def sampled_households(self) -> dict[str, str]:
        """Households currently in the sample: code -> unit."""
        return {code: unit for unit, codes in self.active_households.items() for code in codes}

    def adaptation_outcome(self, unit: str) -> StratumOutcome | None:
        for outcome in self.outcomes.values():
            if outcome.unit == unit and outcome.rule == sampling.Rule.TOWNSHIP_HOUSEHOLDS:
                return outcome
        return None

    def samples_households_of(self, project_type: str) -> bool:
        """Whether the draw samples this project type's households (by R3), not its projects."""
        return any(frame.project_type == project_type
                   and frame.rule is sampling.Rule.TOWNSHIP_HOUSEHOLDS for frame in self.frames)


INITIAL_STATE = DrawState()


def evolve(state: DrawState, event: Event) -> DrawState:
    match event:
        case FrameFrozen():
            return replace(
                state, draw_id=event.draw_id, stage=Stage.FROZEN, title=event.title,
                units=tuple(event.units),
                frames=tuple(frame_from_frozen(s, event.algorithm_version) for s in event.strata),
                stated_digests={s.stratum: s.frame_digest for s in event.strata},
                frames_digest=event.frames_digest,
                projects={p.project_id: p for p in event.projects},
                households={h.household_code: h for h in event.households},
                frozen_at=event.frozen_at)
        case EntropyCommitted():
            return replace(state, stage=Stage.COMMITTED, statement=event.statement,
                           not_before=event.not_before, committed_at=event.committed_at)
        case EntropyRevealed():
            return replace(state, stage=Stage.REVEALED, entropy=event.entropy,
                           revealed_at=event.revealed_at)
        case SampleDrawn():
            outcomes = {o.stratum: o for o in event.strata}
            active = {o.unit: tuple(o.picks) for o in event.strata
                      if o.rule == sampling.Rule.TOWNSHIP_HOUSEHOLDS}
            return replace(state, stage=Stage.DRAWN, outcomes=outcomes, active_households=active,
                           replacements_used={unit: 0 for unit in active},
                           drawn_at=event.drawn_at)
        case DiscretionaryPickAdded():
            projects = {**state.projects, event.project.project_id: event.project}
            return replace(state, projects=projects,
                           discretionary={**state.discretionary,
                                          event.project.project_id: event.reason})
        case HouseholdReplaced():
            codes = tuple(event.replacement_household if c == event.replaced_household else c
                          for c in state.active_households[event.unit])
            log = state.replacement_log.get(event.unit, ()) + (
                (event.replaced_household, event.replacement_household, event.reason_code),)
            return replace(
                state, active_households={**state.active_households, event.unit: codes},
                replacements_used={**state.replacements_used,
                                   event.unit: state.replacements_used.get(event.unit, 0) + 1},
                replaced={**state.replaced, event.replaced_household: event.reason_code},
                replacement_log={**state.replacement_log, event.unit: log})
        case VisitScheduled():
            visit = Visit(visit_id=event.visit_id, target_kind=event.target_kind,
                          target_id=event.target_id, unit=event.unit,
                          project_type=event.project_type, scheduled_for=event.scheduled_for,
                          inspector_ids=tuple(event.inspector_ids))
            return replace(state, visits={**state.visits, visit.visit_id: visit})
        case VisitRecorded():
            visit = replace(state.visits[event.visit_id], outcome=event.outcome,
                            visited_on=event.visited_on,
                            unable_reason_code=event.unable_reason_code,
                            inspector_ids=tuple(event.inspector_ids))
            return replace(state, visits={**state.visits, visit.visit_id: visit})
        case FindingRecorded():
            visit = state.visits[event.visit_id]
            visit = replace(visit, finding_ids=visit.finding_ids + (event.finding_id,))
            return replace(state, visits={**state.visits, visit.visit_id: visit},
                           findings={**state.findings, event.finding_id: event})
    raise TypeError(f"not an inspection draw event: {type(event).__name__}")


def fold(events: Iterable[Event], state: DrawState = INITIAL_STATE) -> DrawState:
    for event in events:
        state = evolve(state, event)
    return state


def frame_from_frozen(stratum: FrozenStratum, algorithm_version: str) -> sampling.StratumFrame:
    """The frame a FrozenStratum records, rebuilt through the algorithm's own parser."""
    obj: dict[str, Any] = {"algorithm_version": algorithm_version, "unit": stratum.unit,
                           "project_type": stratum.project_type, "rule": stratum.rule,
                           "excluded": [e.model_dump() for e in stratum.excluded]}
    if stratum.rule == sampling.Rule.TOWNSHIP_HOUSEHOLDS:
        obj.update(townships=stratum.townships, min_households=stratum.min_households,
                   households_per_township=stratum.households_per_township)
    else:
        obj["items"] = stratum.items
        if stratum.share is not None:
            obj["share"] = stratum.share.model_dump()
    return sampling.frame_from_object(obj)
