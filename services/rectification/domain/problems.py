"""A problem item and its 销号 life cycle (stream `problem-<id>`): state, fold, decide. Pure.

    registered ──► in_rectification ──► close_out_requested ──► closed (已销号)
                        ▲   │                    │
                        │   └─ extension requested / decided (new deadline + reason)
                        └──────── returned (退回, with reason) ◄──┘
    closed ──► reopened (反弹: a NEW item is registered, linked to the original; registration.py)
    registered / in_rectification ──► withdrawn (reason + approver; stays in history)
    overdue is derived (`is_overdue`), never a state.

Registering an item (by people, by a 反弹, or automatically) also takes the unit's next 序号, so
it lives in registration.py with the counter.

The module stays whole (~460 lines): who decides an item (its own section) and the decisions that
ask it are one rule read in several places; apart, a decision could drift from the rule.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from services.rectification import commands as c
from services.rectification import events as e
from services.rectification.domain.rules import (
    FourEyesError,
    InvalidCommandError,
    RectificationRules,
    require_commander,
    require_own_unit,
    require_role,
    zh_date,
)
from services.rectification.events import DeadlineKind, ProblemSource
from shared.errors import ForbiddenError, IllegalTransitionError, NotFoundError
from shared.messages import Actor, Event, Role

# ------------------------------------------------------------------------------------------
# State


class ProblemStatus(StrEnum):
    REGISTERED = "registered"
    IN_RECTIFICATION = "in_rectification"
    CLOSE_OUT_REQUESTED = "close_out_requested"
    CLOSED = "closed"
    REOPENED = "reopened"        # a closed item that rebounded; its successor carries the work
    WITHDRAWN = "withdrawn"


OPEN_STATUSES = frozenset({ProblemStatus.REGISTERED, ProblemStatus.IN_RECTIFICATION,
                           ProblemStatus.CLOSE_OUT_REQUESTED})


@dataclass(frozen=True, slots=True)
class PendingExtension:
    new_deadline: date
    reason: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class ProblemState:
    """One problem item as folded from its stream. `status is None`: not registered (yet)."""

    problem_id: uuid.UUID | None = None
    status: ProblemStatus | None = None
    unit: str = ""
    seq_no: int = 0
    project_id: str = ""
    project_name: str = ""
    township: str = ""
    project_year: int = 0
    description: str = ""
    deadline: date | None = None
    deadline_kind: DeadlineKind = DeadlineKind.DATE
    responsible_person: str = ""
    source: ProblemSource | None = None
    source_ref: str | None = None
    ledger_reason: str | None = None
    reopened_from: uuid.UUID | None = None
    registered_by: str = ""
    registered_at: datetime | None = None
    plan: str | None = None
    close_out_requested_by: str | None = None
    close_out_requester_role: str | None = None
    evidence_text: str | None = None
    evidence_hashes: tuple[str, ...] = ()
    flagged_hashes: tuple[str, ...] = ()
    verified_by: str | None = None
    verifier_role: str | None = None
    closed_at: datetime | None = None
    times_returned: int = 0
    pending_extension: PendingExtension | None = None
    extensions_granted: int = 0
    reopened_as: uuid.UUID | None = None
    withdrawn_by: str | None = None
    withdrawn_at: datetime | None = None

    @property
    def is_registered(self) -> bool:
        return self.status is not None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


# ------------------------------------------------------------------------------------------
# Who may work an item


def require_registered(state: ProblemState) -> uuid.UUID:
    """The item's id; NotFoundError while it is not registered."""
    if not state.is_registered or state.problem_id is None:
        raise NotFoundError(f"problem {state.problem_id} is not registered" if state.problem_id
                            else "problem is not registered",
                            zh="未找到该问题，请确认问题编号；问题须先登记。")
    return state.problem_id


def illegal(state: ProblemState, what: str) -> IllegalTransitionError:
    label = STATUS_LABELS.get(state.status, "未登记") if state.status else "未登记"
    return IllegalTransitionError(
        f"cannot {what}: problem {state.problem_id} is {state.status}",
        zh=f"该问题当前为「{label}」，不能{WHAT_ZH.get(what, '进行此操作')}，请刷新后按当前状态办理。")


def require_status(state: ProblemState, allowed: Collection[ProblemStatus], what: str) -> None:
    if state.status not in allowed:
        raise illegal(state, what)


# What each status is called on screen and paper (the vocabulary of the life cycle).
STATUS_LABELS: Mapping[ProblemStatus | None, str] = {
    ProblemStatus.REGISTERED: "已登记",
    ProblemStatus.IN_RECTIFICATION: "整改中",
    ProblemStatus.CLOSE_OUT_REQUESTED: "已申请销号",
    ProblemStatus.CLOSED: "已销号",
    ProblemStatus.REOPENED: "已反弹",
    ProblemStatus.WITHDRAWN: "已撤销",
}
WHAT_ZH = {
    "start rectification": "开始整改",
    "request close-out": "申请销号",
    "verify close-out": "核验销号",
    "return close-out": "退回销号申请",
    "request an extension": "申请延期",
    "withdraw": "撤销",
    "reopen": "登记反弹",
    "register it again": "重复登记",
}

DISTRICT_ROLES = (Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)
WORKERS = (*DISTRICT_ROLES, Role.CITY_ADMIN)  # start, request close-out, request extension


# ------------------------------------------------------------------------------------------
# Who decides an item (DOMAIN.md §4; docs/adr/0012): every item always has someone who can.
#
#   a district-found item (self-inspection, 台账): the unit's district_reviewer; when the
#       requester IS a reviewer of the unit (a small unit may have only one), the city bureau
#       (city_admin) decides too (another reviewer of the unit still may);
#   a city-found item: an inspector;
#   nobody ever decides what they asked for themselves (FourEyesError).
# Extensions and withdrawals: the same authority, or city_admin whoever asked (the city runs the
# campaign's calendar and its register), never the one who asked / registered.


def may_verify(state: ProblemState, actor: Actor) -> bool:
    """The item's own verifying authority: the unit's district_reviewer for district-found items,
    an inspector for city-found ones. (Four-eyes is checked separately.)"""
    if state.source is ProblemSource.CITY:
        return actor.role is Role.INSPECTOR
    return actor.role is Role.DISTRICT_REVIEWER and actor.unit == state.unit


def requester_is_the_units_reviewer(state: ProblemState) -> bool:
    """The close-out of a district-found item was asked for by a reviewer of the unit (or by an
    unknown role: events recorded before the role was carried), so the city bureau decides."""
    if state.source is ProblemSource.CITY:
        return False
    return state.close_out_requester_role in (None, str(Role.DISTRICT_REVIEWER))


def may_judge_close_out(state: ProblemState, actor: Actor) -> bool:
    """Verify or return a close-out (four-eyes aside): the verifying authority, or city_admin when
    the requester is the unit's own reviewer."""
    return may_verify(state, actor) or (actor.role is Role.CITY_ADMIN
                                        and requester_is_the_units_reviewer(state))


def close_out_deciders_zh(state: ProblemState) -> str:
    """Who decides this item's close-out, as the message to the person who may not."""
    if state.source is ProblemSource.CITY:
        return "市级检查发现的问题由市检查组人员核验销号"
    if requester_is_the_units_reviewer(state):
        return "本单位审核人申请的销号，由市民政局（管理员）或本单位其他审核人核验"
    return "本单位自查及台账问题由本单位审核人核验销号"


def _require_close_out_judge(state: ProblemState, actor: Actor, what: str) -> None:
    if not may_judge_close_out(state, actor):
        needed = ("an inspector" if state.source is ProblemSource.CITY
                  else f"the district_reviewer of {state.unit}"
                  + (" or city_admin" if requester_is_the_units_reviewer(state) else ""))
        raise ForbiddenError(f"{what} of a {state.source}-found item needs {needed}; "
                             f"{actor.role} of {actor.unit or 'the city'} may not",
                             zh=f"{close_out_deciders_zh(state)}，您的角色无权办理。")


def _require_verifier_or_city_admin(state: ProblemState, actor: Actor, what: str) -> None:
    if actor.role is not Role.CITY_ADMIN and not may_verify(state, actor):
        needed = ("an inspector" if state.source is ProblemSource.CITY
                  else f"the district_reviewer of {state.unit}")
        who = "市检查组人员" if state.source is ProblemSource.CITY else "本单位审核人"
        raise ForbiddenError(f"{what} of a {state.source}-found item needs {needed} or city_admin; "
                             f"{actor.role} of {actor.unit or 'the city'} may not",
                             zh=f"此事项由{who}或市民政局（管理员）审批，您的角色无权办理。")


# ------------------------------------------------------------------------------------------
# Decide


def decide_start_rectification(state: ProblemState, cmd: c.StartRectification, *, actor: Actor,
                               now: datetime) -> list[Event]:
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    require_status(state, {ProblemStatus.REGISTERED}, "start rectification")
    require_role(actor, WORKERS, "starting rectification")
    return [e.RectificationStarted(
        problem_id=problem_id, unit=state.unit, plan=cmd.plan,
        responsible_person=cmd.responsible_person or state.responsible_person,
        started_by=actor.id)]


def decide_request_close_out(state: ProblemState, cmd: c.RequestCloseOut, *, actor: Actor,
                             now: datetime,
                             evidence_index: Mapping[str, Collection[uuid.UUID]] | None = None,
                             ) -> list[Event]:
    """申请销号 with evidence. With the evidence index (attachment hash -> items it was filed for),
    any attachment already filed for ANOTHER item is flagged (纸面销号) after the request."""
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    require_status(state, {ProblemStatus.IN_RECTIFICATION}, "request close-out")
    require_role(actor, WORKERS, "requesting close-out")
    requested: list[Event] = [e.CloseOutRequested(
        problem_id=problem_id, unit=state.unit, evidence_text=cmd.evidence_text,
        attachment_hashes=cmd.attachment_hashes, requested_by=actor.id, requested_at=now,
        requester_role=str(actor.role))]
    flags = find_evidence_reuse(problem_id, state.unit, cmd.attachment_hashes,
                                evidence_index or {})
    return requested + list(flags)


def find_evidence_reuse(problem_id: uuid.UUID, unit: str, attachment_hashes: Iterable[str],
                        evidence_index: Mapping[str, Collection[uuid.UUID]],
                        ) -> list[e.EvidenceReuseFlagged]:
    """One flag per attachment hash already filed for a different item. Refiling on the same
    item (after a return) is not reuse."""
    flags = []
    for content_hash in dict.fromkeys(attachment_hashes):  # each hash once, in order
        others = sorted({pid for pid in evidence_index.get(content_hash, ()) if pid != problem_id},
                        key=str)
        if others:
            flags.append(e.EvidenceReuseFlagged(problem_id=problem_id, unit=unit,
                                                attachment_hash=content_hash,
                                                other_problem_ids=tuple(others)))
    return flags


def decide_verify_close_out(state: ProblemState, cmd: c.VerifyCloseOut, *, actor: Actor,
                            now: datetime) -> list[Event]:
    """销号: by the verifying authority, never the person who requested it."""
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    require_status(state, {ProblemStatus.CLOSE_OUT_REQUESTED}, "verify close-out")
    _require_close_out_judge(state, actor, "verifying close-out")
    if actor.id == state.close_out_requested_by:
        raise FourEyesError("the close-out must be verified by someone other than its requester",
                            zh=f"不能核验自己申请的销号：{close_out_deciders_zh(state)}。")
    return [e.CloseOutVerified(problem_id=problem_id, unit=state.unit, verified_by=actor.id,
                               verifier_role=str(actor.role), conclusion=cmd.conclusion,
                               verified_at=now)]


def decide_return_close_out(state: ProblemState, cmd: c.ReturnCloseOut, *, actor: Actor,
                            now: datetime) -> list[Event]:
    """退回: the verifying authority sends the item back to rectification with a reason."""
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    require_status(state, {ProblemStatus.CLOSE_OUT_REQUESTED}, "return close-out")
    _require_close_out_judge(state, actor, "returning close-out")
    if actor.id == state.close_out_requested_by:
        raise FourEyesError("a close-out request is judged by someone other than its requester",
                            zh=f"不能退回自己申请的销号：{close_out_deciders_zh(state)}。")
    return [e.CloseOutReturned(problem_id=problem_id, unit=state.unit, reason=cmd.reason,
                               returned_by=actor.id)]


def decide_request_extension(state: ProblemState, cmd: c.RequestExtension, *, actor: Actor,
                             now: datetime) -> list[Event]:
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    require_status(state, {ProblemStatus.REGISTERED, ProblemStatus.IN_RECTIFICATION},
                    "request an extension")
    require_role(actor, WORKERS, "requesting an extension")
    if state.pending_extension is not None:
        raise IllegalTransitionError(
            f"cannot request an extension: problem {state.problem_id} is {state.status} with an "
            f"extension request pending",
            zh="该问题已有一项延期申请待审批，请待审批后再申请。")
    assert state.deadline is not None
    if cmd.new_deadline <= state.deadline:
        raise InvalidCommandError(
            f"an extension must move the deadline later than {state.deadline}",
            zh=f"延期后的整改限期须晚于现整改限期（{zh_date(state.deadline)}）。")
    return [e.ExtensionRequested(problem_id=problem_id, unit=state.unit,
                                 current_deadline=state.deadline, new_deadline=cmd.new_deadline,
                                 reason=cmd.reason, requested_by=actor.id)]


def decide_extension(state: ProblemState, cmd: c.DecideExtension, *, actor: Actor,
                     now: datetime) -> list[Event]:
    """Approve or reject the pending extension: the verifying authority or city_admin, never the
    requester. Allowed while the item is open (a close-out may have been requested meanwhile)."""
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    pending = state.pending_extension
    if not state.is_open or pending is None:
        raise IllegalTransitionError(
            f"cannot decide an extension: problem {state.problem_id} is {state.status} with no "
            f"extension request pending",
            zh="该问题没有待审批的延期申请。")
    _require_verifier_or_city_admin(state, actor, "deciding an extension")
    if actor.id == pending.requested_by:
        raise FourEyesError("an extension is decided by someone other than its requester",
                            zh="不能审批自己提出的延期申请，请由本单位其他审核人、市检查组人员"
                               "（市级发现的问题）或市民政局审批。")
    assert state.deadline is not None
    return [e.ExtensionDecided(
        problem_id=problem_id, unit=state.unit, approved=cmd.approved,
        requested_deadline=pending.new_deadline,
        deadline=pending.new_deadline if cmd.approved else state.deadline,
        reason=cmd.reason, decided_by=actor.id)]


def decide_withdraw_problem(state: ProblemState, cmd: c.WithdrawProblem, *, actor: Actor,
                            now: datetime) -> list[Event]:
    """撤销 (registered in error): approved by the verifying authority or city_admin, who is
    recorded as the approver and may not be the official who registered the item."""
    require_commander(actor)
    problem_id = require_registered(state)
    require_own_unit(actor, state.unit)
    require_status(state, {ProblemStatus.REGISTERED, ProblemStatus.IN_RECTIFICATION}, "withdraw")
    _require_verifier_or_city_admin(state, actor, "approving a withdrawal")
    if actor.id == state.registered_by:
        raise FourEyesError("a withdrawal is approved by someone other than the registrant",
                            zh="不能审批撤销自己登记的问题，请由本单位其他审核人、市检查组人员"
                               "（市级发现的问题）或市民政局审批。")
    return [e.ProblemWithdrawn(problem_id=problem_id, unit=state.unit, reason=cmd.reason,
                               approved_by=actor.id, approver=actor.name, withdrawn_at=now)]


# ------------------------------------------------------------------------------------------
# Evolve


def evolve(state: ProblemState, event: Event) -> ProblemState:
    """Fold one problem event into the item's state (events are facts: no checks here)."""
    match event:
        case e.ProblemRegistered():
            return ProblemState(
                problem_id=event.problem_id, status=ProblemStatus.REGISTERED, unit=event.unit,
                seq_no=event.seq_no, project_id=event.project_id, project_name=event.project_name,
                township=event.township, project_year=event.project_year,
                description=event.description, deadline=event.deadline,
                deadline_kind=event.deadline_kind, responsible_person=event.responsible_person,
                source=event.source, source_ref=event.source_ref,
                ledger_reason=event.ledger_reason, reopened_from=event.reopened_from,
                registered_by=event.registered_by, registered_at=event.registered_at)
        case e.RectificationStarted():
            return replace(state, status=ProblemStatus.IN_RECTIFICATION, plan=event.plan,
                           responsible_person=event.responsible_person)
        case e.CloseOutRequested():
            return replace(state, status=ProblemStatus.CLOSE_OUT_REQUESTED,
                           close_out_requested_by=event.requested_by,
                           close_out_requester_role=event.requester_role,
                           evidence_text=event.evidence_text,
                           evidence_hashes=event.attachment_hashes)
        case e.EvidenceReuseFlagged():
            return replace(state, flagged_hashes=(*state.flagged_hashes, event.attachment_hash))
        case e.CloseOutVerified():
            return replace(state, status=ProblemStatus.CLOSED, verified_by=event.verified_by,
                           verifier_role=event.verifier_role, closed_at=event.verified_at,
                           pending_extension=None)
        case e.CloseOutReturned():
            return replace(state, status=ProblemStatus.IN_RECTIFICATION,
                           close_out_requested_by=None, close_out_requester_role=None,
                           times_returned=state.times_returned + 1)
        case e.ExtensionRequested():
            return replace(state, pending_extension=PendingExtension(
                new_deadline=event.new_deadline, reason=event.reason,
                requested_by=event.requested_by))
        case e.ExtensionDecided():
            return replace(state, pending_extension=None, deadline=event.deadline,
                           extensions_granted=state.extensions_granted + int(event.approved))
        case e.ProblemReopened():
            return replace(state, status=ProblemStatus.REOPENED, reopened_as=event.new_problem_id)
        case e.ProblemWithdrawn():
            return replace(state, status=ProblemStatus.WITHDRAWN, withdrawn_by=event.approved_by,
                           withdrawn_at=event.withdrawn_at, pending_extension=None)
    raise TypeError(f"not a problem event: {type(event).__name__}")


# ------------------------------------------------------------------------------------------
# Derived facts


def is_overdue(state: ProblemState, now: datetime, rules: RectificationRules) -> bool:
    """Open (close-out requested still counts: it is not 销号 until verified) and past the last
    instant of its 整改限期."""
    return state.is_open and state.deadline is not None and now > rules.due_at(state.deadline)


def was_open_at(state: ProblemState, instant: datetime) -> bool:
    """Whether the item was registered and neither closed nor withdrawn at `instant`."""
    if state.registered_at is None or state.registered_at > instant:
        return False
    if state.closed_at is not None and state.closed_at <= instant:
        return False
    if state.withdrawn_at is not None and state.withdrawn_at <= instant:
        return False
    return True


def problem_list_rows(items: Iterable[ProblemState], *, unit: str,
                      responsible_leader: str = "") -> tuple[e.ProblemListRow, ...]:
    """The unit's rows of 附件2 by 序号: every item ever registered except withdrawn ones (a gap
    in 序号 is the honest trace of a withdrawal; numbers are never closed up). 责任人 is the one
    named for the item, else `responsible_leader`: the unit's 责任领导 (附件1), answerable for
    what nobody was named for (automatic items start without one)."""
    rows = []
    for item in items:
        if item.unit != unit or not item.is_registered or item.status is ProblemStatus.WITHDRAWN:
            continue
        assert item.problem_id is not None and item.deadline is not None  # set by registration
        rows.append(e.ProblemListRow(
            problem_id=item.problem_id, seq_no=item.seq_no, township=item.township,
            project_name=item.project_name, project_year=item.project_year,
            description=item.description, deadline=item.deadline,
            deadline_kind=item.deadline_kind,
            responsible_person=item.responsible_person or responsible_leader,
            status=str(item.status)))
    return tuple(sorted(rows, key=lambda row: row.seq_no))

