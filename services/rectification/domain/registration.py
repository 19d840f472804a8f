"""Registering a problem item: 登记 by people, 反弹, and the automatic items other services'
events open (a registry 台账 entry, an inspection finding). Pure.

Every registration takes the unit's next 序号: the decision reads the item's stream and the unit's
counter and writes both, in one append (see counter.py for why numbers never repeat).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime, timedelta

from services.rectification import commands as c
from services.rectification import events as e
from services.rectification.domain.counter import UnitSequenceState
from services.rectification.domain.problems import (
    DISTRICT_ROLES,
    ProblemState,
    ProblemStatus,
    illegal,
    require_registered,
    require_status,
)
from services.rectification.domain.rules import (
    InvalidCommandError,
    ProjectRef,
    RectificationRules,
    require_commander,
    require_own_unit,
    require_role,
    zh_date,
)
from services.rectification.events import DeadlineKind, ProblemSource
from services.registry.events import describe_reason
from shared.errors import NotFoundError
from shared.messages import Actor, Event, Role, deterministic_id

UNKNOWN_PROJECT_ZH = "未找到该项目：问题须登记在项目库中已有的项目下，请先核对项目编号。"


def ledger_problem_id(ledger_entry_id: uuid.UUID | str) -> uuid.UUID:
    """The item a ledger entry opens: derived from the registry's entry id (LedgerEntryAdded's
    `entry_id`), so a redelivery can't open two."""
    return deterministic_id("rectification", "ledger-item", str(ledger_entry_id))


def finding_problem_id(finding_id: uuid.UUID | str) -> uuid.UUID:
    return deterministic_id("rectification", "finding-item", str(finding_id))


_REGISTRANTS = {
    ProblemSource.SELF_INSPECTION: (*DISTRICT_ROLES, Role.CITY_ADMIN),
    ProblemSource.CITY: (Role.INSPECTOR, Role.CITY_ADMIN),
    ProblemSource.LEDGER: (Role.CITY_ADMIN,),
}


def _deadline_for(kind: DeadlineKind, deadline: date | None, *, today: date,
                  rules: RectificationRules) -> date:
    if kind is DeadlineKind.IMMEDIATE:
        return today + timedelta(days=rules.immediate_days)
    assert deadline is not None  # the command's validator guarantees it
    if deadline < today:
        raise InvalidCommandError(f"整改限期 {deadline} is before the registration day {today}",
                                  zh=f"整改限期（{zh_date(deadline)}）不能早于登记日（{zh_date(today)}）。")
    return deadline


# ------------------------------------------------------------------------------------------
# By people


def decide_register_problem(
    state: ProblemState, sequence: UnitSequenceState, cmd: c.RegisterProblem, *,
    project: ProjectRef | None, actor: Actor, now: datetime,
    rules: RectificationRules,
) -> list[Event]:
    """登记: allocate the next 序号 of the project's unit and register the item.

    `state` is the (normally empty) state of `problem-<cmd.problem_id>`; `sequence` the unit's
    counter; `project` this service's view of the project (None: unknown, refused). A retry of the
    same registration returns no events.
    """
    require_commander(actor)
    if project is None:
        raise NotFoundError(f"unknown project {cmd.project_id}: a problem needs a known project",
                            zh=UNKNOWN_PROJECT_ZH)
    if project.project_id != cmd.project_id:
        raise ValueError("the project given does not match the command")
    if sequence.unit != project.unit:
        raise ValueError(f"counter of unit {sequence.unit} given for a project of {project.unit}")
    require_own_unit(actor, project.unit)
    require_role(actor, _REGISTRANTS[cmd.source], f"registering a {cmd.source} item")
    if state.is_registered:
        if (state.problem_id == cmd.problem_id and state.source is cmd.source
                and state.source_ref == cmd.source_ref and state.project_id == cmd.project_id
                and state.description == cmd.description):
            return []  # the same registration again (a retry, a redelivery): already done
        raise illegal(state, "register it again")
    if cmd.problem_id in sequence.allocations:
        return []
    if cmd.source is ProblemSource.LEDGER and not cmd.ledger_reason:
        raise InvalidCommandError("a ledger item needs the ledger reason",
                                  zh="台账问题须写明列入台账的原因。")
    today = rules.local_date(now)
    deadline = _deadline_for(cmd.deadline_kind, cmd.deadline, today=today, rules=rules)
    seq_no = sequence.last_seq_no + 1
    return [
        e.SeqNoAllocated(unit=project.unit, seq_no=seq_no, problem_id=cmd.problem_id),
        e.ProblemRegistered(
            problem_id=cmd.problem_id, unit=project.unit, seq_no=seq_no,
            project_id=project.project_id, project_name=project.name, township=project.township,
            project_year=project.year, description=cmd.description, deadline=deadline,
            deadline_kind=cmd.deadline_kind, responsible_person=cmd.responsible_person,
            source=cmd.source, source_ref=cmd.source_ref, ledger_reason=cmd.ledger_reason,
            reopened_from=None, registered_by=actor.id, registered_at=now),
    ]


def decide_reopen_problem(
    state: ProblemState, sequence: UnitSequenceState, cmd: c.ReopenProblem, *, actor: Actor,
    now: datetime, rules: RectificationRules,
) -> list[Event]:
    """反弹: a closed item is found again. Marks the original reopened and registers a NEW item
    (next 序号 of the unit, `reopened_from` = the original) that counts against the unit. The new
    item is city-found if the city found it again, self-found if the unit did."""
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    if state.status is ProblemStatus.REOPENED and state.reopened_as == cmd.new_problem_id:
        return []  # the same reopening again: already done
    require_status(state, {ProblemStatus.CLOSED}, "reopen")
    require_role(actor, (*DISTRICT_ROLES, Role.INSPECTOR, Role.CITY_ADMIN), "reopening (反弹)")
    if sequence.unit != state.unit:
        raise ValueError(f"counter of unit {sequence.unit} given for an item of {state.unit}")
    if cmd.new_problem_id in sequence.allocations or cmd.new_problem_id == state.problem_id:
        raise InvalidCommandError(f"problem id {cmd.new_problem_id} is already taken",
                                  zh="新问题编号已被使用，请重新提交（系统会生成新的编号）。")
    source = ProblemSource.SELF_INSPECTION if actor.role.is_district else ProblemSource.CITY
    today = rules.local_date(now)
    deadline = _deadline_for(cmd.deadline_kind, cmd.deadline, today=today, rules=rules)
    seq_no = sequence.last_seq_no + 1
    return [
        e.ProblemReopened(problem_id=problem_id, unit=state.unit,
                          new_problem_id=cmd.new_problem_id, reason=cmd.reason,
                          reopened_by=actor.id),
        e.SeqNoAllocated(unit=state.unit, seq_no=seq_no, problem_id=cmd.new_problem_id),
        e.ProblemRegistered(
            problem_id=cmd.new_problem_id, unit=state.unit, seq_no=seq_no,
            project_id=state.project_id, project_name=state.project_name,
            township=state.township, project_year=state.project_year,
            description=cmd.description or state.description, deadline=deadline,
            deadline_kind=cmd.deadline_kind, responsible_person=state.responsible_person,
            source=source, source_ref=str(state.problem_id), ledger_reason=state.ledger_reason,
            reopened_from=state.problem_id, registered_by=actor.id, registered_at=now),
    ]


# ------------------------------------------------------------------------------------------
# Automatic items (from registry and inspection events)

# Reason code -> Chinese: the registry's own words (its public contract, services/registry/events.py);
# the service passes one bound to the campaign file (its minimum of services, its service names).
ReasonDescriber = Callable[[str], str]


def ledger_description(reason: str, reason_details: Iterable[str] = (), *,
                       describe: ReasonDescriber = describe_reason) -> str:
    """存在的问题隐患 of a ledger item, in Chinese, from the registry's reason codes: the reason,
    then the details that say more than the reason itself."""
    details = [describe(code) for code in dict.fromkeys(reason_details) if code != reason]
    return f"列入台账：{describe(reason)}" + (f"（{'；'.join(details)}）" if details else "")


def open_ledger_keys(items: Iterable[ProblemState]) -> set[tuple[str, str]]:
    """(project_id, ledger reason) of every open ledger item: those block a second item."""
    return {(item.project_id, item.ledger_reason or "") for item in items
            if item.source is ProblemSource.LEDGER and item.is_open}


def blocking_ledger_items(items: Iterable[ProblemState], *, project_id: str,
                          reason: str) -> list[uuid.UUID]:
    """The open ledger items of the project for this reason: a new entry opens none while one is."""
    return [item.problem_id for item in items
            if item.source is ProblemSource.LEDGER and item.is_open
            and item.project_id == project_id and (item.ledger_reason or "") == reason
            and item.problem_id is not None]


def registration_for_ledger_entry(
    *, ledger_entry_id: uuid.UUID | str, project_id: str, reason: str,
    open_ledger_items: Collection[tuple[str, str]], now: datetime,
    reason_details: Iterable[str] = (), rules: RectificationRules,
    describe: ReasonDescriber = describe_reason,
) -> c.RegisterProblem | None:
    """A registry LedgerEntryAdded (entry_id, project_id, reason, reason_details) opens an item
    (source = ledger) unless one is already open for the same project and reason
    (`open_ledger_keys`). The problem id derives from the entry id, so a redelivery decides the
    same registration, which `decide_register_problem` then recognises."""
    if (project_id, reason) in open_ledger_items:
        return None
    today = rules.local_date(now)
    immediate = today > rules.ledger_item_deadline
    return c.RegisterProblem(
        problem_id=ledger_problem_id(ledger_entry_id), project_id=project_id,
        description=ledger_description(reason, reason_details, describe=describe),
        deadline_kind=DeadlineKind.IMMEDIATE if immediate else DeadlineKind.DATE,
        deadline=None if immediate else rules.ledger_item_deadline,
        source=ProblemSource.LEDGER, source_ref=str(ledger_entry_id), ledger_reason=reason)


def registration_for_finding(
    *, finding_id: uuid.UUID | str, project_id: str, unit: str, text: str, deadline: date | None,
    project: ProjectRef | None, now: datetime, rules: RectificationRules,
) -> c.RegisterProblem:
    """An inspection FindingRecorded (finding_id, project_id, unit, text, deadline) opens a
    city-found item. No deadline, or one already past, makes it 立行立改. The problem id derives
    from the finding id (exactly once under redelivery). `project`: this service's view of the
    project; a handler that has not seen it may build one from the finding's own project fields."""
    if project is None:
        raise NotFoundError(f"unknown project {project_id}: a finding needs a known project",
                            zh=UNKNOWN_PROJECT_ZH)
    if project.unit != unit:
        raise InvalidCommandError(f"finding says unit {unit}, the project belongs to {project.unit}",
                                  zh="检查发现所填单位与项目所属单位不一致，请核对。")
    immediate = deadline is None or deadline < rules.local_date(now)
    return c.RegisterProblem(
        problem_id=finding_problem_id(finding_id), project_id=project_id, description=text,
        deadline_kind=DeadlineKind.IMMEDIATE if immediate else DeadlineKind.DATE,
        deadline=None if immediate else deadline,
        source=ProblemSource.CITY, source_ref=str(finding_id))


def decide_open_ledger_item(
    state: ProblemState, sequence: UnitSequenceState, cmd: c.OpenLedgerItem, *,
    ledger_items: Iterable[ProblemState], actor: Actor, now: datetime, rules: RectificationRules,
    describe: ReasonDescriber = describe_reason,
) -> list[Event]:
    """A 台账 entry registers its item (`registration_for_ledger_entry`), unless one of the
    project's `ledger_items` is still open for the same reason: then nothing happens."""
    registration = registration_for_ledger_entry(
        ledger_entry_id=cmd.entry_id, project_id=cmd.project_id, reason=cmd.reason,
        reason_details=cmd.reason_details, open_ledger_items=open_ledger_keys(ledger_items),
        now=now, rules=rules, describe=describe)
    if registration is None:
        return []
    project = ProjectRef(project_id=cmd.project_id, unit=cmd.unit, township=cmd.township,
                         name=cmd.project_name, year=cmd.project_year)
    return decide_register_problem(state, sequence, registration, project=project, actor=actor,
                                   now=now, rules=rules)


def decide_open_finding_item(
    state: ProblemState, sequence: UnitSequenceState, cmd: c.OpenFindingItem, *,
    project: ProjectRef, actor: Actor, now: datetime, rules: RectificationRules,
) -> list[Event]:
    """A finding registers its city-found item (`registration_for_finding`)."""
    registration = registration_for_finding(
        finding_id=cmd.finding_id, project_id=cmd.project_id, unit=cmd.unit, text=cmd.text,
        deadline=cmd.deadline, project=project, now=now, rules=rules)
    return decide_register_problem(state, sequence, registration, project=project, actor=actor,
                                   now=now, rules=rules)
