"""The inspection draw and its visits, decided and folded without I/O.

A draw's life: FrameFrozen → EntropyCommitted → EntropyRevealed → SampleDrawn, then discretionary
picks, household replacements, visits and findings. The order is the point: the frame is fixed
before anyone states where the entropy will come from, and the entropy is stated before it exists,
so nobody can steer the sample (DOMAIN.md §5).

Time, ids and the actor come in as arguments; the service's view of the registry (projects,
households) comes in as ProjectView / HouseholdView values the handler reads from its read model.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from services.inspection import sampling
from services.inspection.commands import (
    AddDiscretionaryPick, CommitEntropy, DrawSample, FreezeFrame, RecordFinding, RecordVisit,
    ReplaceHousehold, RevealEntropy, ScheduleVisit,
)
from services.inspection.events import (
    ChecklistAnswer, DiscretionaryPickAdded, EntropyCommitted, EntropyRevealed, ExcludedItem,
    FindingRecorded, FrameFrozen, FrozenStratum, HouseholdLabel, HouseholdReplaced, ProjectLabel,
    SampleDrawn, StratumOutcome, TargetKind, VisitOutcome, VisitRecorded, VisitScheduled,
)
from shared.errors import DomainError, ForbiddenError, IllegalTransitionError, NotFoundError
from shared.messages import Actor, Event, Role, deterministic_id

# ---------------------------------------------------------------------------------------------
# Vocabulary and configuration


class ProjectType(StrEnum):
    COMPLEX = "complex"
    COMMUNITY_CENTER = "community_center"
    RURAL_CENTER = "rural_center"
    CANTEEN = "canteen"
    HOME_ADAPTATION = "home_adaptation"


INSPECTION_ROLES = frozenset({Role.INSPECTOR, Role.CITY_ADMIN})

DEFAULT_RULES: Mapping[str, sampling.Rule] = MappingProxyType({
    ProjectType.COMPLEX: sampling.Rule.FULL_COVERAGE,
    ProjectType.RURAL_CENTER: sampling.Rule.FULL_COVERAGE,
    ProjectType.COMMUNITY_CENTER: sampling.Rule.HALF,
    ProjectType.CANTEEN: sampling.Rule.HALF,
    ProjectType.HOME_ADAPTATION: sampling.Rule.TOWNSHIP_HOUSEHOLDS,
})

_FACILITY_CHECKLIST = MappingProxyType({
    "services_three_plus": "提供3项以上专业养老服务",
    "meal_assistance": "提供助餐服务",
    "operator_in_place": "有运营主体并正常运营",
    "safety_facilities": "消防等安全设施完好",
    "service_records": "服务台账资料齐全",
})

DEFAULT_CHECKLISTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    ProjectType.COMPLEX: _FACILITY_CHECKLIST,
    ProjectType.COMMUNITY_CENTER: _FACILITY_CHECKLIST,
    ProjectType.RURAL_CENTER: _FACILITY_CHECKLIST,
    ProjectType.CANTEEN: _FACILITY_CHECKLIST,
    ProjectType.HOME_ADAPTATION: MappingProxyType({
        "items_match_plan": "改造项目与方案一致",
        "items_installed_working": "设施安装到位、正常使用",
        "acceptance_documented": "验收资料齐全",
        "older_person_satisfied": "老年人满意",
    }),
})

CHECKLIST_ANSWERS = frozenset({"yes", "no", "not_applicable"})

UNABLE_REASON_CODES: Mapping[str, str] = MappingProxyType({
    "absent": "多次上门不在家",
    "refused": "拒绝入户",
    "deceased": "已去世",
    "moved": "已搬离",
    "hospitalised": "住院",
    "other": "其他",
})


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """The campaign's sampling configuration (Ezhou 2024 defaults)."""

    rules: Mapping[str, sampling.Rule] = field(default_factory=lambda: DEFAULT_RULES)
    min_households: int = 2
    households_per_township: int = 2
    checklists: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: DEFAULT_CHECKLISTS)


DEFAULT_POLICY = SamplingPolicy()


@dataclass(frozen=True, slots=True)
class ProjectView:
    """What the inspection service learned of a project from registry events."""

    project_id: str
    unit: str
    township: str
    project_type: str
    provincial_key: bool = False
    retired: bool = False
    retired_reason: str | None = None
    name: str = ""
    project_year: int | None = None


@dataclass(frozen=True, slots=True)
class HouseholdView:
    """An adapted household as the inspection service knows it: a code, never a person."""

    household_code: str
    project_id: str   # the home-adaptation programme it belongs to
    unit: str
    township: str


# ---------------------------------------------------------------------------------------------
# Errors


class DrawStageError(IllegalTransitionError):
    """A draw step came out of order (reveal before commit, draw before reveal, ...)."""


class NotSampledError(DomainError):
    code = "not_sampled"


class VisitRuleError(DomainError):
    code = "visit_rule_broken"


class ReplacementsExhaustedError(DomainError):
    code = "replacements_exhausted"


class FrameIntegrityError(DomainError):
    """The frozen frame no longer hashes to its recorded digest; refuse to draw on it."""

    code = "frame_digest_mismatch"


# ---------------------------------------------------------------------------------------------
# State


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
    obj: dict = {"algorithm_version": algorithm_version, "unit": stratum.unit,
                 "project_type": stratum.project_type, "rule": stratum.rule,
                 "excluded": [e.model_dump() for e in stratum.excluded]}
    if stratum.rule == sampling.Rule.TOWNSHIP_HOUSEHOLDS:
        obj.update(townships=stratum.townships, min_households=stratum.min_households,
                   households_per_township=stratum.households_per_township)
    else:
        obj["items"] = stratum.items
    return sampling.frame_from_object(obj)


# ---------------------------------------------------------------------------------------------
# Frames from the registry view


def build_frames(units: Sequence[str], projects: Iterable[ProjectView],
                 households: Iterable[HouseholdView],
                 policy: SamplingPolicy = DEFAULT_POLICY) -> list[sampling.StratumFrame]:
    """One frame per (unit, project type of the policy), empty strata included, sorted by stratum.

    Retired projects are excluded with their reason; for R1 types, projects without the
    provincial key flag are excluded as `not_provincial_key` (they may be added as discretionary
    picks); households of a retired programme are excluded as `programme_retired`.
    """
    projects = list(projects)
    households = list(households)
    known_units = set(units)
    for item in [*projects, *households]:
        if item.unit not in known_units:
            raise DomainError(f"{item!r} belongs to unknown unit {item.unit!r}", code="unknown_unit")
    for project in projects:
        if project.project_type not in policy.rules:
            raise DomainError(f"project {project.project_id} has type {project.project_type!r}, "
                              "which the sampling policy does not know", code="unknown_type")
    programmes = {p.project_id: p for p in projects}
    frames = []
    for unit in units:
        for project_type, rule in policy.rules.items():
            if rule is sampling.Rule.TOWNSHIP_HOUSEHOLDS:
                frames.append(_adaptation_frame(unit, project_type, households, programmes, policy))
                continue
            items, exclusions = [], []
            for project in projects:
                if project.unit != unit or project.project_type != project_type:
                    continue
                if project.retired:
                    exclusions.append(sampling.Exclusion(project.project_id, "retired",
                                                         project.retired_reason or ""))
                elif rule is sampling.Rule.FULL_COVERAGE and not project.provincial_key:
                    exclusions.append(sampling.Exclusion(project.project_id, "not_provincial_key"))
                else:
                    items.append(project.project_id)
            frames.append(sampling.facility_frame(unit, project_type, rule, items, exclusions))
    return sorted(frames, key=lambda f: f.stratum)


def _adaptation_frame(unit: str, project_type: str, households: Sequence[HouseholdView],
                      programmes: Mapping[str, ProjectView],
                      policy: SamplingPolicy) -> sampling.StratumFrame:
    townships: dict[str, list[str]] = {}
    exclusions = []
    for household in households:
        if household.unit != unit:
            continue
        programme = programmes.get(household.project_id)
        if programme is not None and programme.retired:
            exclusions.append(sampling.Exclusion(household.household_code, "programme_retired",
                                                 programme.retired_reason or ""))
            continue
        townships.setdefault(household.township, []).append(household.household_code)
    return sampling.adaptation_frame(unit, townships, project_type=project_type,
                                     min_households=policy.min_households,
                                     households_per_township=policy.households_per_township,
                                     exclusions=exclusions)


def _frozen(frame: sampling.StratumFrame) -> FrozenStratum:
    return FrozenStratum(
        stratum=frame.stratum, unit=frame.unit, project_type=frame.project_type,
        rule=frame.rule.value, items=list(frame.items),
        townships={name: list(codes) for name, codes in frame.townships},
        min_households=frame.min_households,
        households_per_township=frame.households_per_township,
        excluded=[ExcludedItem(id=e.item_id, code=e.code, detail=e.detail)
                  for e in frame.exclusions],
        frame_digest=frame.digest)


def project_label(project: ProjectView) -> ProjectLabel:
    return ProjectLabel(project_id=project.project_id, name=project.name, unit=project.unit,
                        township=project.township, project_type=project.project_type,
                        project_year=project.project_year)


# ---------------------------------------------------------------------------------------------
# Decisions


def _authorise(actor: Actor) -> None:
    if actor.role not in INSPECTION_ROLES:
        raise ForbiddenError(f"role {actor.role.value!r} may not act on inspections; "
                             "only inspector and city_admin may")


def _require_draw(state: DrawState, draw_id: str) -> None:
    if state.stage is Stage.NEW:
        raise NotFoundError(f"draw {draw_id!r} has no frozen frame yet", code="draw_not_found")
    if state.draw_id != draw_id:
        raise DomainError(f"command for draw {draw_id!r} sent to draw {state.draw_id!r}",
                          code="wrong_draw")


def _require_stage(state: DrawState, stage: Stage, what: str) -> None:
    if state.stage is not stage:
        raise DrawStageError(f"cannot {what}: the draw is at stage {state.stage.name.lower()}, "
                             f"this step needs stage {stage.name.lower()}",
                             code=f"{what.replace(' ', '_')}_out_of_order")


def decide_freeze_frame(state: DrawState, cmd: FreezeFrame, *, actor: Actor, now: dt.datetime,
                        units: Sequence[str], projects: Iterable[ProjectView],
                        households: Iterable[HouseholdView],
                        policy: SamplingPolicy = DEFAULT_POLICY) -> list[Event]:
    _authorise(actor)
    if state.stage is not Stage.NEW:
        raise DrawStageError(f"draw {cmd.draw_id!r} already has a frozen frame; a new frame is a "
                             "new draw with a new id", code="frame_already_frozen")
    if not units:
        raise DomainError("no reporting units to draw for", code="no_units")
    projects = list(projects)
    households = list(households)
    frames = build_frames(units, projects, households, policy)
    framed_projects = {pid for f in frames for pid in f.items}
    framed_households = {code for f in frames for _, codes in f.townships for code in codes}
    programmes = {h.project_id for h in households if h.household_code in framed_households}
    labels = [project_label(p) for p in sorted(projects, key=lambda p: p.project_id)
              if p.project_id in framed_projects or p.project_id in programmes]
    household_labels = [
        HouseholdLabel(household_code=h.household_code, project_id=h.project_id, unit=h.unit,
                       township=h.township)
        for h in sorted(households, key=lambda h: h.household_code)
        if h.household_code in framed_households]
    return [FrameFrozen(
        draw_id=cmd.draw_id, title=cmd.title, algorithm_version=sampling.ALGORITHM_VERSION,
        units=list(units), strata=[_frozen(f) for f in frames],
        frames_digest=sampling.frames_digest({f.stratum: f.digest for f in frames}),
        projects=labels, households=household_labels, frozen_at=now)]


def decide_commit_entropy(state: DrawState, cmd: CommitEntropy, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    if state.stage >= Stage.COMMITTED:
        raise DrawStageError("the entropy of this draw was already committed; it cannot change",
                             code="entropy_already_committed")
    if cmd.not_before is not None and cmd.not_before <= now:
        raise DomainError("the committed entropy must not exist yet: not_before is in the past",
                          code="entropy_already_known")
    return [EntropyCommitted(draw_id=cmd.draw_id, statement=cmd.statement,
                             not_before=cmd.not_before, committed_at=now)]


def decide_reveal_entropy(state: DrawState, cmd: RevealEntropy, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    if state.stage >= Stage.REVEALED:
        raise DrawStageError("the entropy was already revealed; it is revealed only once",
                             code="entropy_already_revealed")
    if state.stage < Stage.COMMITTED:
        raise DrawStageError("commit to the entropy source before revealing it",
                             code="entropy_not_committed")
    if state.not_before is not None and now < state.not_before:
        raise DrawStageError(f"the committed entropy does not exist before {state.not_before}",
                             code="reveal_too_early")
    return [EntropyRevealed(draw_id=cmd.draw_id, entropy=cmd.entropy, revealed_at=now)]


def decide_draw_sample(state: DrawState, cmd: DrawSample, *, actor: Actor,
                       now: dt.datetime) -> list[Event]:
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    if state.stage is Stage.DRAWN:
        raise DrawStageError("the sample was already drawn", code="already_drawn")
    if state.stage is not Stage.REVEALED:
        raise DrawStageError("draw only after the frame is frozen and the entropy revealed",
                             code="entropy_not_revealed")
    assert state.entropy is not None and state.draw_id is not None
    strata = []
    for frame in state.frames:
        if frame.digest != state.stated_digests.get(frame.stratum):
            raise FrameIntegrityError(f"frame {frame.stratum} does not hash to its frozen digest")
        draw = sampling.draw_stratum(frame, draw_id=state.draw_id, entropy=state.entropy)
        strata.append(StratumOutcome(
            stratum=draw.stratum, unit=frame.unit, project_type=frame.project_type,
            rule=draw.rule.value, frame_digest=draw.frame_digest, frame_size=draw.frame_size,
            sample_size=draw.sample_size, picks=list(draw.picks),
            replacements=list(draw.replacements), no_eligible_project=draw.no_eligible_project,
            insufficient_sample=draw.insufficient_sample, township=draw.township,
            township_order=list(draw.township_order)))
    return [SampleDrawn(draw_id=state.draw_id, algorithm_version=sampling.ALGORITHM_VERSION,
                        strata=strata, drawn_at=now)]


def decide_reveal_and_draw(state: DrawState, cmd: RevealEntropy, *, actor: Actor,
                           now: dt.datetime) -> list[Event]:
    """Reveal the entropy and draw at once: the usual case at the draw meeting."""
    revealed = decide_reveal_entropy(state, cmd, actor=actor, now=now)
    drawn = decide_draw_sample(fold(revealed, state), DrawSample(draw_id=cmd.draw_id),
                               actor=actor, now=now)
    return revealed + drawn


def decide_add_discretionary_pick(state: DrawState, cmd: AddDiscretionaryPick, *, actor: Actor,
                                  now: dt.datetime, project: ProjectView | None) -> list[Event]:
    """Add a project the rules did not select (e.g. a non-provincial complex), with a reason."""
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    _require_stage(state, Stage.DRAWN, "add discretionary pick")
    if project is None or project.project_id != cmd.project_id:
        raise NotFoundError(f"project {cmd.project_id!r} is unknown to the inspection service",
                            code="project_not_found")
    if project.unit not in state.units:
        raise DomainError(f"project {project.project_id} belongs to unit {project.unit!r}, "
                          "which this draw does not cover", code="unit_not_in_draw")
    if project.project_type == ProjectType.HOME_ADAPTATION:
        raise DomainError("households are sampled by rule R3 and replaced by the sequence; "
                          "a programme is not a discretionary pick", code="not_a_facility")
    if project.project_id in state.sampled_projects():
        raise DomainError(f"project {project.project_id} is already in the sample",
                          code="already_sampled")
    if not cmd.reason.strip():
        raise DomainError("a discretionary pick needs a reason", code="reason_required")
    return [DiscretionaryPickAdded(draw_id=cmd.draw_id, project=project_label(project),
                                   reason=cmd.reason, added_at=now)]


def decide_replace_household(state: DrawState, cmd: ReplaceHousehold, *, actor: Actor,
                             now: dt.datetime) -> list[Event]:
    """无法入户: the next household of the same sequence takes the place; never a redraw."""
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    _require_stage(state, Stage.DRAWN, "replace household")
    unit = state.sampled_households().get(cmd.household_code)
    if unit is None:
        raise NotSampledError(f"household {cmd.household_code!r} is not in the current sample")
    if cmd.reason_code not in UNABLE_REASON_CODES:
        raise DomainError(f"unknown reason code {cmd.reason_code!r}; one of "
                          f"{sorted(UNABLE_REASON_CODES)}", code="unknown_reason_code")
    visits = [v for v in state.visits.values()
              if v.target_kind is TargetKind.HOUSEHOLD and v.target_id == cmd.household_code]
    if any(v.inspected for v in visits):
        raise VisitRuleError(f"household {cmd.household_code!r} was already inspected")
    if any(v.is_open for v in visits):
        raise VisitRuleError(f"household {cmd.household_code!r} has an open visit; record its "
                             "outcome (无法入户) first")
    outcome = state.adaptation_outcome(unit)
    assert outcome is not None
    used = state.replacements_used.get(unit, 0)
    if used >= len(outcome.replacements):
        raise ReplacementsExhaustedError(
            f"no household left in the replacement list of {outcome.stratum}")
    return [HouseholdReplaced(draw_id=cmd.draw_id, unit=unit, stratum=outcome.stratum,
                              replaced_household=cmd.household_code,
                              replacement_household=outcome.replacements[used],
                              reason_code=cmd.reason_code, note=cmd.note, replaced_at=now)]


def _target_type(state: DrawState, kind: TargetKind, target_id: str) -> tuple[str, str]:
    """(unit, project type) of a sampled target, or NotSampledError."""
    if kind is TargetKind.PROJECT:
        if target_id not in state.sampled_projects():
            raise NotSampledError(f"project {target_id!r} is not in the sample of this draw")
        label = state.projects[target_id]
        return label.unit, label.project_type
    unit = state.sampled_households().get(target_id)
    if unit is None:
        raise NotSampledError(f"household {target_id!r} is not in the current sample")
    outcome = state.adaptation_outcome(unit)
    assert outcome is not None
    return unit, outcome.project_type


def decide_schedule_visit(state: DrawState, cmd: ScheduleVisit, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    _require_stage(state, Stage.DRAWN, "schedule visit")
    if cmd.visit_id in state.visits:
        raise DomainError(f"visit {cmd.visit_id!r} exists already", code="visit_exists")
    unit, project_type = _target_type(state, cmd.target_kind, cmd.target_id)
    for visit in state.visits.values():
        if visit.target_kind is cmd.target_kind and visit.target_id == cmd.target_id:
            if visit.inspected:
                raise VisitRuleError(f"{cmd.target_id!r} was already inspected "
                                     f"(visit {visit.visit_id})")
            if visit.is_open:
                raise VisitRuleError(f"{cmd.target_id!r} already has an open visit "
                                     f"({visit.visit_id})")
    return [VisitScheduled(draw_id=cmd.draw_id, visit_id=cmd.visit_id, target_kind=cmd.target_kind,
                           target_id=cmd.target_id, unit=unit, project_type=project_type,
                           scheduled_for=cmd.scheduled_for, inspector_ids=cmd.inspector_ids)]


def decide_record_visit(state: DrawState, cmd: RecordVisit, *, actor: Actor, now: dt.datetime,
                        policy: SamplingPolicy = DEFAULT_POLICY) -> list[Event]:
    """Record what the visit found; each finding becomes a FindingRecorded for rectification."""
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    visit = state.visits.get(cmd.visit_id)
    if visit is None:
        raise NotFoundError(f"visit {cmd.visit_id!r} was never scheduled", code="visit_not_found")
    if not visit.is_open:
        raise VisitRuleError(f"visit {cmd.visit_id!r} was already recorded")
    _target_type(state, visit.target_kind, visit.target_id)  # still in the sample
    if cmd.visited_on > now.date():
        raise VisitRuleError("a visit cannot be recorded for a future date")
    outcome = cmd.outcome
    if outcome is VisitOutcome.UNABLE_TO_ENTER:
        if visit.target_kind is not TargetKind.HOUSEHOLD:
            raise VisitRuleError("无法入户 applies to households; a facility that is closed is a "
                                 "finding, not a reason to skip it")
        if cmd.unable_reason_code not in UNABLE_REASON_CODES:
            raise VisitRuleError(f"无法入户 needs a reason code, one of {sorted(UNABLE_REASON_CODES)}")
        if cmd.findings:
            raise VisitRuleError("a visit that could not enter has no findings")
    else:
        if cmd.unable_reason_code is not None:
            raise VisitRuleError("a reason code belongs only to 无法入户")
        _check_checklist(cmd.checklist, policy.checklists.get(visit.project_type, {}))
        if outcome is VisitOutcome.PROBLEMS_FOUND and not cmd.findings:
            raise VisitRuleError("problems_found needs at least one finding")
        if outcome is VisitOutcome.PASSED and cmd.findings:
            raise VisitRuleError("a visit with findings is problems_found, not 合格")
    if outcome is VisitOutcome.UNABLE_TO_ENTER and cmd.checklist:
        raise VisitRuleError("a visit that could not enter has no checklist")
    if len(set(cmd.photo_hashes)) != len(cmd.photo_hashes):
        raise VisitRuleError("the same photo is listed twice")
    events: list[Event] = [VisitRecorded(
        draw_id=cmd.draw_id, visit_id=cmd.visit_id, target_kind=visit.target_kind,
        target_id=visit.target_id, unit=visit.unit, project_type=visit.project_type,
        outcome=outcome, unable_reason_code=cmd.unable_reason_code,
        inspector_ids=cmd.inspector_ids, visited_on=cmd.visited_on,
        checklist=[ChecklistAnswer(item=k, answer=v) for k, v in sorted(cmd.checklist.items())],
        notes=cmd.notes, photo_hashes=cmd.photo_hashes)]
    for n, draft in enumerate(cmd.findings):
        events.append(_finding(state, visit, n, draft.text, draft.deadline, cmd.visited_on))
    return events


def decide_record_finding(state: DrawState, cmd: RecordFinding, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    _authorise(actor)
    _require_draw(state, cmd.draw_id)
    visit = state.visits.get(cmd.visit_id)
    if visit is None:
        raise NotFoundError(f"visit {cmd.visit_id!r} was never scheduled", code="visit_not_found")
    if visit.outcome is not VisitOutcome.PROBLEMS_FOUND:
        raise VisitRuleError("findings belong to a visit recorded as problems_found")
    assert visit.visited_on is not None
    return [_finding(state, visit, len(visit.finding_ids), cmd.text, cmd.deadline,
                     visit.visited_on)]


def _finding(state: DrawState, visit: Visit, n: int, text: str, deadline: dt.date,
             found_on: dt.date) -> FindingRecorded:
    if deadline < found_on:
        raise VisitRuleError("a finding's deadline cannot be before the day it was found")
    if not text.strip():
        raise VisitRuleError("a finding needs a text")
    assert state.draw_id is not None
    household_code = None
    project_id = visit.target_id
    if visit.target_kind is TargetKind.HOUSEHOLD:
        household = state.households[visit.target_id]
        household_code, project_id = household.household_code, household.project_id
    label = state.projects.get(project_id)
    township = label.township if label else state.households[visit.target_id].township
    # Derived, so a retried command yields the same finding id and rectification dedups it.
    finding_id = str(deterministic_id("inspection.finding", state.draw_id, visit.visit_id, str(n)))
    return FindingRecorded(
        finding_id=finding_id, draw_id=state.draw_id, visit_id=visit.visit_id,
        project_id=project_id, household_code=household_code, unit=visit.unit,
        project_name=label.name if label else "", township=township,
        project_year=label.project_year if label else None, project_type=visit.project_type,
        text=text, deadline=deadline, found_on=found_on)


def _check_checklist(answers: Mapping[str, str], items: Mapping[str, str]) -> None:
    missing = sorted(set(items) - set(answers))
    unknown = sorted(set(answers) - set(items))
    if missing or unknown:
        raise VisitRuleError(f"checklist does not match the project type: missing {missing}, "
                             f"unknown {unknown}", code="checklist_mismatch")
    wrong = sorted(k for k, v in answers.items() if v not in CHECKLIST_ANSWERS)
    if wrong:
        raise VisitRuleError(f"checklist answers must be one of {sorted(CHECKLIST_ANSWERS)}: "
                             f"{wrong}", code="checklist_mismatch")


# ---------------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True, slots=True)
class UnitProgress:
    unit: str
    sampled: int = 0
    scheduled: int = 0
    inspected: int = 0
    passed: int = 0
    problems_found: int = 0
    unable_to_enter: int = 0
    findings: int = 0
    no_eligible_strata: tuple[str, ...] = ()
    insufficient_sample: bool = False


def visit_progress(state: DrawState) -> dict[str, UnitProgress]:
    """Per unit: how much of its sample has been visited, and with what outcome."""
    progress = {unit: UnitProgress(unit=unit) for unit in state.units}
    targets = {(TargetKind.PROJECT, pid): state.projects[pid].unit
               for pid in state.sampled_projects()}
    targets.update({(TargetKind.HOUSEHOLD, code): unit
                    for code, unit in state.sampled_households().items()})
    for unit in set(targets.values()):
        progress[unit] = replace(progress[unit],
                                 sampled=sum(1 for u in targets.values() if u == unit))
    for visit in state.visits.values():
        p = progress[visit.unit]
        current = (visit.target_kind, visit.target_id) in targets
        progress[visit.unit] = replace(
            p,
            scheduled=p.scheduled + (1 if visit.is_open and current else 0),
            inspected=p.inspected + (1 if visit.inspected else 0),
            passed=p.passed + (visit.outcome is VisitOutcome.PASSED),
            problems_found=p.problems_found + (visit.outcome is VisitOutcome.PROBLEMS_FOUND),
            unable_to_enter=p.unable_to_enter + (visit.outcome is VisitOutcome.UNABLE_TO_ENTER),
            findings=p.findings + len(visit.finding_ids))
    for outcome in state.outcomes.values():
        p = progress[outcome.unit]
        progress[outcome.unit] = replace(
            p, no_eligible_strata=p.no_eligible_strata + ((outcome.stratum,)
                                                          if outcome.no_eligible_project else ()),
            insufficient_sample=p.insufficient_sample or outcome.insufficient_sample)
    return progress
