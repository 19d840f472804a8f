"""Freezing a draw's frames from the service's view of the registry.

The view (ProjectView, HouseholdView) is what registry events told this service; the handler
reads it from the read model inside the command's transaction. The rules and their numbers come
in as the SamplingPolicy, which the service builds from the campaign file (config.py): nothing
here knows which project type is sampled how, or how many households a township needs.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from services.inspection import sampling
from services.inspection.commands import FreezeFrame
from services.inspection.domain.rules import DrawStageError, FrameInvalidError, authorise
from services.inspection.domain.state import DrawState, Stage
from services.inspection.events import (
    ExcludedItem,
    FrameFrozen,
    FrozenStratum,
    HouseholdLabel,
    ProjectLabel,
    SampleShare,
)
from shared.errors import DomainError
from shared.messages import Actor, Event


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """The campaign's sampling rules: each project type's rule, R2's share, R3's numbers."""

    rules: Mapping[str, sampling.Rule]
    r2_share: Fraction
    min_households: int
    households_per_township: int


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


def build_frames(units: Sequence[str], projects: Iterable[ProjectView],
                 households: Iterable[HouseholdView],
                 policy: SamplingPolicy) -> list[sampling.StratumFrame]:
    """One frame per (unit, project type of the policy), empty strata included, sorted by stratum.

    Retired projects are excluded with their reason; for R1 types, projects without the
    provincial key flag are excluded as `not_provincial_key` (they may be added as discretionary
    picks); households of a retired programme are excluded as `programme_retired`.
    """
    projects = list(projects)
    households = list(households)
    known_units = set(units)
    places: list[ProjectView | HouseholdView] = [*projects, *households]
    for item in places:
        if item.unit not in known_units:
            raise DomainError(f"{item!r} belongs to unknown unit {item.unit!r}", code="unknown_unit",
                              zh=f"登记信息中有不属于本次活动填报单位的记录（{item.unit}），请联系管理员。")
    for project in projects:
        if project.project_type not in policy.rules:
            raise DomainError(f"project {project.project_id} has type {project.project_type!r}, "
                              "which the sampling policy does not know", code="unknown_type",
                              zh=f"项目类型“{project.project_type}”没有抽查规则，请联系管理员。")
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
            share = policy.r2_share if rule is sampling.Rule.SHARE else None
            frames.append(sampling.facility_frame(unit, project_type, rule, items, exclusions,
                                                  share=share))
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


def frozen_stratum(frame: sampling.StratumFrame) -> FrozenStratum:
    """A frame as its FrameFrozen event records it: the fields of its frame object, and digest."""
    recorded = frame.frame_object()
    share = recorded.get("share")
    return FrozenStratum(
        stratum=frame.stratum, unit=frame.unit, project_type=frame.project_type,
        rule=frame.rule.value, items=list(frame.items),
        townships={name: list(codes) for name, codes in frame.townships},
        min_households=frame.min_households,
        households_per_township=frame.households_per_township,
        share=None if share is None else SampleShare(**share),
        excluded=[ExcludedItem(id=e.item_id, code=e.code, detail=e.detail)
                  for e in frame.exclusions],
        frame_digest=frame.digest)


def project_label(project: ProjectView) -> ProjectLabel:
    return ProjectLabel(project_id=project.project_id, name=project.name, unit=project.unit,
                        township=project.township, project_type=project.project_type,
                        project_year=project.project_year)


def decide_freeze_frame(state: DrawState, cmd: FreezeFrame, *, actor: Actor, now: dt.datetime,
                        units: Sequence[str], projects: Iterable[ProjectView],
                        households: Iterable[HouseholdView],
                        policy: SamplingPolicy) -> list[Event]:
    authorise(actor)
    if state.stage is not Stage.NEW:
        raise DrawStageError(f"draw {cmd.draw_id!r} already has a frozen frame; a new frame is a "
                             "new draw with a new id", code="frame_already_frozen",
                             zh="该抽签已冻结抽样框；重新冻结请使用新的抽签编号。")
    if not units:
        raise DomainError("no reporting units to draw for", code="no_units",
                          zh="没有可抽查的填报单位。")
    projects = list(projects)
    households = list(households)
    try:
        frames = build_frames(units, projects, households, policy)
    except sampling.FrameError as exc:
        raise FrameInvalidError(f"the frame cannot be built: {exc}",
                                zh="登记信息有误，无法建立抽样框，请联系管理员。") from exc
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
        units=list(units), strata=[frozen_stratum(f) for f in frames],
        frames_digest=sampling.frames_digest({f.stratum: f.digest for f in frames}),
        projects=labels, households=household_labels, frozen_at=now)]
