"""Visits to the sample and what they found: scheduling, recording, findings, progress.

Only a target in the current sample is visited; a target has one open visit at a time and is
inspected once; each finding becomes a FindingRecorded, from which rectification opens a
city-found problem item (its id is derived, so a retried command yields the same finding).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from services.inspection.commands import RecordFinding, RecordVisit, ScheduleVisit
from services.inspection.domain.checklists import (
    UNABLE_REASON_CODES,
    check_checklist,
    checklist_of,
    unable_reasons_zh,
)
from services.inspection.domain.rules import (
    NotSampledError,
    VisitRuleError,
    authorise,
    require_draw,
    require_stage,
)
from services.inspection.domain.state import DrawState, Stage, Visit
from services.inspection.events import (
    ChecklistAnswer,
    FindingRecorded,
    TargetKind,
    VisitOutcome,
    VisitRecorded,
    VisitScheduled,
)
from shared.errors import DomainError, NotFoundError
from shared.messages import Actor, Event, deterministic_id


def _target_type(state: DrawState, kind: TargetKind, target_id: str) -> tuple[str, str]:
    """(unit, project type) of a sampled target, or NotSampledError."""
    if kind is TargetKind.PROJECT:
        if target_id not in state.sampled_projects():
            raise NotSampledError(f"project {target_id!r} is not in the sample of this draw",
                                  zh="该项目不在本次抽查名单中。")
        label = state.projects[target_id]
        return label.unit, label.project_type
    unit = state.sampled_households().get(target_id)
    if unit is None:
        raise NotSampledError(f"household {target_id!r} is not in the current sample",
                              zh=f"改造户 {target_id} 不在当前抽查名单中（可能已被替补）。")
    outcome = state.adaptation_outcome(unit)
    assert outcome is not None
    return unit, outcome.project_type


def decide_schedule_visit(state: DrawState, cmd: ScheduleVisit, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    authorise(actor)
    require_draw(state, cmd.draw_id)
    require_stage(state, Stage.DRAWN, "schedule visit")
    if cmd.visit_id in state.visits:
        raise DomainError(f"visit {cmd.visit_id!r} exists already", code="visit_exists",
                          zh=f"检查安排 {cmd.visit_id} 已存在，请换一个编号。")
    unit, project_type = _target_type(state, cmd.target_kind, cmd.target_id)
    for visit in state.visits.values():
        if visit.target_kind is cmd.target_kind and visit.target_id == cmd.target_id:
            if visit.inspected:
                raise VisitRuleError(f"{cmd.target_id!r} was already inspected "
                                     f"(visit {visit.visit_id})",
                                     zh=f"该对象已检查过（检查 {visit.visit_id}），不再重复安排。")
            if visit.is_open:
                raise VisitRuleError(f"{cmd.target_id!r} already has an open visit "
                                     f"({visit.visit_id})",
                                     zh=f"该对象已有待完成的检查（{visit.visit_id}），请先记录其结果。")
    return [VisitScheduled(draw_id=cmd.draw_id, visit_id=cmd.visit_id, target_kind=cmd.target_kind,
                           target_id=cmd.target_id, unit=unit, project_type=project_type,
                           scheduled_for=cmd.scheduled_for, inspector_ids=cmd.inspector_ids)]


def decide_record_visit(state: DrawState, cmd: RecordVisit, *, actor: Actor,
                        now: dt.datetime) -> list[Event]:
    """Record what the visit found; each finding becomes a FindingRecorded for rectification.

    `now` is in the campaign's time zone: "a visit cannot be recorded for a future date" means
    the local day (07:30 in Ezhou on May 10 is still May 9 in UTC).
    """
    authorise(actor)
    require_draw(state, cmd.draw_id)
    visit = state.visits.get(cmd.visit_id)
    if visit is None:
        raise NotFoundError(f"visit {cmd.visit_id!r} was never scheduled", code="visit_not_found",
                            zh=f"没有安排过检查 {cmd.visit_id}。")
    if not visit.is_open:
        raise VisitRuleError(f"visit {cmd.visit_id!r} was already recorded",
                             zh="这次检查的结果已经记录过。")
    _target_type(state, visit.target_kind, visit.target_id)  # still in the sample
    if cmd.visited_on > now.date():
        raise VisitRuleError("a visit cannot be recorded for a future date",
                             zh="检查日期不能晚于今天。")
    outcome = cmd.outcome
    if outcome is VisitOutcome.UNABLE_TO_ENTER:
        if visit.target_kind is not TargetKind.HOUSEHOLD:
            raise VisitRuleError("无法入户 applies to households; a facility that is closed is a "
                                 "finding, not a reason to skip it",
                                 zh="“无法入户”只适用于改造户；设施关门应记为发现的问题。")
        if cmd.unable_reason_code not in UNABLE_REASON_CODES:
            raise VisitRuleError(f"无法入户 needs a reason code, one of {sorted(UNABLE_REASON_CODES)}",
                                 zh=f"“无法入户”须选择原因，可选：{unable_reasons_zh()}。")
        if cmd.findings:
            raise VisitRuleError("a visit that could not enter has no findings",
                                 zh="无法入户的检查不能记录问题。")
    else:
        if cmd.unable_reason_code is not None:
            raise VisitRuleError("a reason code belongs only to 无法入户",
                                 zh="只有“无法入户”才填写原因。")
        check_checklist(cmd.checklist, checklist_of(visit.project_type))
        if outcome is VisitOutcome.PROBLEMS_FOUND and not cmd.findings:
            raise VisitRuleError("problems_found needs at least one finding",
                                 zh="结论为“发现问题”时，至少填写一个问题。")
        if outcome is VisitOutcome.PASSED and cmd.findings:
            raise VisitRuleError("a visit with findings is problems_found, not 合格",
                                 zh="填写了问题的检查，结论应为“发现问题”，不是“合格”。")
    if outcome is VisitOutcome.UNABLE_TO_ENTER and cmd.checklist:
        raise VisitRuleError("a visit that could not enter has no checklist",
                             zh="无法入户的检查不填写检查表。")
    if len(set(cmd.photo_hashes)) != len(cmd.photo_hashes):
        raise VisitRuleError("the same photo is listed twice", zh="同一张照片重复上传了。")
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
    authorise(actor)
    require_draw(state, cmd.draw_id)
    visit = state.visits.get(cmd.visit_id)
    if visit is None:
        raise NotFoundError(f"visit {cmd.visit_id!r} was never scheduled", code="visit_not_found",
                            zh=f"没有安排过检查 {cmd.visit_id}。")
    if visit.outcome is not VisitOutcome.PROBLEMS_FOUND:
        raise VisitRuleError("findings belong to a visit recorded as problems_found",
                             zh="只有结论为“发现问题”的检查才能补充问题。")
    assert visit.visited_on is not None
    return [_finding(state, visit, len(visit.finding_ids), cmd.text, cmd.deadline,
                     visit.visited_on)]


def _finding(state: DrawState, visit: Visit, n: int, text: str, deadline: dt.date,
             found_on: dt.date) -> FindingRecorded:
    if deadline < found_on:
        raise VisitRuleError("a finding's deadline cannot be before the day it was found",
                             zh="整改限期不能早于发现问题的日期。")
    if not text.strip():
        raise VisitRuleError("a finding needs a text", zh="请填写问题内容。")
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
    """Per unit: how much of its sample has been visited, and with what outcome.

    The read model keeps the same numbers as counters (projections.py); a test holds them equal.
    """
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
