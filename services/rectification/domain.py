"""Problem items and their 销号 life cycle, the per-unit 序号 counter, and the unit reports: pure rules.

No I/O, no clock, no ids invented here: time (`now`), the acting official (`actor`), ids and the
service's own knowledge (the project, the unit's counter, the evidence index) come in as arguments.
Each `decide_*` returns the events to append or raises a named error; `evolve*` folds an event into
a state. Life cycle (DOMAIN.md §4):

    registered ──► in_rectification ──► close_out_requested ──► closed (已销号)
                        ▲   │                    │
                        │   └─ extension requested / decided (new deadline + reason)
                        └──────── returned (退回, with reason) ◄──┘
    closed ──► reopened (反弹: a NEW item is registered, linked to the original)
    registered / in_rectification ──► withdrawn (reason + approver; stays in history)
    overdue is derived (`is_overdue`), never a state.

Who may do what (checked in this order: may the role command at all, is it the actor's own unit,
is the transition legal from the current state, does the actor hold the authority it needs, four
eyes):

| command | roles |
| --- | --- |
| register | self_inspection: district roles of the unit, city_admin; city: inspector, city_admin; ledger: city_admin (the system actor) |
| start, request close-out, request extension | district roles of the unit, city_admin |
| verify / return a close-out | district-found (self_inspection, ledger): the unit's district_reviewer; city-found: an inspector. Never the requester. |
| decide an extension, withdraw | the verifying authority above, or city_admin; never the requester / the registrant |
| reopen (反弹) | district roles of the unit, inspector, city_admin |
| leader, auditor | no commands at all |

A district role acting on another unit gets ForbiddenError; an illegal transition gets
IllegalTransitionError naming the current state; a broken four-eyes rule gets FourEyesError (a
ForbiddenError).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Collection, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from shared.errors import DomainError, ForbiddenError, IllegalTransitionError, NotFoundError
from shared.messages import Actor, Event, Role, deterministic_id

from . import commands as c
from . import events as e
from .events import DeadlineKind, ProblemSource, ReportKind


class InvalidCommandError(DomainError):
    """The command is well-formed but makes no sense here (a deadline in the past, ...)."""

    code = "invalid_command"


class FourEyesError(ForbiddenError):
    """The same person may not both ask for and grant something (谁整改谁申请, 谁验收谁负责)."""


# ------------------------------------------------------------------------------------------
# Campaign rules this module needs. The Ezhou 2024 campaign is the default; another campaign
# file builds its own instance (DOMAIN.md: "product decisions live in configuration").


@dataclass(frozen=True, slots=True)
class RectificationRules:
    immediate_days: int = 7                              # 立行立改: due N days after registration
    timezone: str = "Asia/Shanghai"
    due_time: time = time(23, 59, 59)                    # "25日前" = on or before the 25th, 23:59:59
    monthly_list_months: tuple[str, ...] = ("2024-03", "2024-04")
    monthly_list_due_day: int = 25
    # Per-month due days, when a campaign file names them (they win over `monthly_list_due_day`).
    monthly_list_due_dates: tuple[tuple[str, date], ...] = ()
    self_inspection_report_due: date = date(2024, 5, 7)
    typical_case_due: date = date(2024, 5, 31)
    # A ledger item registered on or before this date is due on it (all rectified by 05-07);
    # one registered later is 立行立改.
    ledger_item_deadline: date = date(2024, 5, 7)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    def due_at(self, day: date) -> datetime:
        """The last instant of a due day, local time."""
        return datetime.combine(day, self.due_time, tzinfo=self.tz)

    def monthly_list_due(self, month: str) -> datetime:
        for named, day in self.monthly_list_due_dates:
            if named == month:
                return self.due_at(day)
        year, mon = (int(part) for part in month.split("-"))
        return self.due_at(date(year, mon, self.monthly_list_due_day))


EZHOU_2024 = RectificationRules()


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """What this service learned about a project from registry events (its own read model)."""

    project_id: str
    unit: str
    township: str
    name: str
    year: int


# ------------------------------------------------------------------------------------------
# States


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


@dataclass(frozen=True, slots=True)
class UnitSequenceState:
    """The 序号 counter of one unit, folded from its stream `unit-<code>`.

    Design: the stream holds one SeqNoAllocated per item. Registering appends SeqNoAllocated to
    `unit-<code>` (expected version = the version read) and ProblemRegistered to
    `problem-<id>` (expected NO_STREAM) in ONE atomic multi-stream append. Two registrations racing
    in one unit: one gets ConcurrencyError and retries with the next number, so a number is never
    handed out twice; numbers come only from here and nothing ever takes one back (a withdrawn
    item keeps its 序号), so they are never reused or renumbered. The number equals the stream's
    version today, but the explicit event says in the log which item got which number, and lets a
    retry of the same problem id be recognised (`allocations`).
    """

    unit: str
    last_seq_no: int = 0
    allocations: Mapping[uuid.UUID, int] = field(default_factory=dict)


class ReportStatus(StrEnum):
    SUBMITTED = "submitted"      # by the unit's 填报人, waiting for its 审核人
    REVIEWED = "reviewed"        # approved by the 审核人
    RETURNED = "returned"        # sent back (by the 审核人 or, for monthly lists, the city)


@dataclass(frozen=True, slots=True)
class ReportState:
    """One report of a unit: a monthly list, its self-inspection report, or one typical case.

    `late` is the lateness of the FIRST submission: a report returned for correction and
    resubmitted after the due date is not late a second time (the unit met the date once).
    """

    report_id: str
    kind: ReportKind
    unit: str
    period: str = ""             # "2024-03" for a monthly list, the case id for a typical case
    status: ReportStatus | None = None
    version: int = 0
    submitted_by: str | None = None
    submitter: str | None = None
    submitted_at: datetime | None = None
    first_submitted_at: datetime | None = None
    due: datetime | None = None
    late: bool = False
    rows: tuple[e.ProblemListRow, ...] = ()
    title: str = ""
    text: str = ""
    attachment_hashes: tuple[str, ...] = ()
    reviewed_by: str | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    comments: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------
# Streams and ids


def problem_stream_id(problem_id: uuid.UUID) -> str:
    return f"problem-{problem_id}"


def unit_stream_id(unit: str) -> str:
    return f"unit-{unit}"


def report_stream_id(report_id: str) -> str:
    return f"report-{report_id}"


def score_stream_id(unit: str) -> str:
    return f"score-{unit}"


def monthly_list_report_id(unit: str, month: str) -> str:
    return f"{unit}-{ReportKind.MONTHLY_LIST}-{month}"


def self_inspection_report_id(unit: str) -> str:
    return f"{unit}-{ReportKind.SELF_INSPECTION_REPORT}"


def typical_case_report_id(unit: str, case_id: uuid.UUID) -> str:
    return f"{unit}-{ReportKind.TYPICAL_CASE}-{case_id}"


def stream_id_for(event: Event) -> str:
    """The stream a decided event is appended to (decide functions may touch several)."""
    if isinstance(event, e.SeqNoAllocated):
        return unit_stream_id(event.unit)
    if isinstance(event, e.PointsDeducted):
        return score_stream_id(event.unit)
    if isinstance(event, e.REPORT_EVENTS):
        return report_stream_id(event.report_id)  # type: ignore[attr-defined]
    if isinstance(event, e.PROBLEM_EVENTS):
        return problem_stream_id(event.problem_id)  # type: ignore[attr-defined]
    raise TypeError(f"not a rectification event: {type(event).__name__}")


def ledger_problem_id(ledger_entry_id: uuid.UUID | str) -> uuid.UUID:
    """The item a ledger entry opens: derived from the registry's entry id (LedgerEntryAdded's
    `entry_id`), so a redelivery can't open two."""
    return deterministic_id("rectification", "ledger-item", str(ledger_entry_id))


def finding_problem_id(finding_id: uuid.UUID | str) -> uuid.UUID:
    return deterministic_id("rectification", "finding-item", str(finding_id))


# ------------------------------------------------------------------------------------------
# Permission helpers


def _require_commander(actor: Actor) -> None:
    if not actor.role.may_command:
        raise ForbiddenError(f"role {actor.role} sends no commands")


def _require_own_unit(actor: Actor, unit: str) -> None:
    if actor.role.is_district and actor.unit != unit:
        raise ForbiddenError(f"a district role acts only on its own unit ({actor.unit}), not {unit}")


def _require_role(actor: Actor, allowed: Collection[Role], what: str) -> None:
    if actor.role not in allowed:
        names = " or ".join(sorted(str(r) for r in allowed))
        raise ForbiddenError(f"{what} needs {names}; {actor.role} may not")


def _require_registered(state: ProblemState) -> None:
    if not state.is_registered:
        raise NotFoundError(f"problem {state.problem_id} is not registered" if state.problem_id
                            else "problem is not registered")


def _illegal(state: ProblemState, what: str) -> IllegalTransitionError:
    return IllegalTransitionError(f"cannot {what}: problem {state.problem_id} is {state.status}")


def _require_status(state: ProblemState, allowed: Collection[ProblemStatus], what: str) -> None:
    if state.status not in allowed:
        raise _illegal(state, what)


_DISTRICT = (Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)
_REGISTRANTS = {
    ProblemSource.SELF_INSPECTION: (*_DISTRICT, Role.CITY_ADMIN),
    ProblemSource.CITY: (Role.INSPECTOR, Role.CITY_ADMIN),
    ProblemSource.LEDGER: (Role.CITY_ADMIN,),
}
_WORKERS = (*_DISTRICT, Role.CITY_ADMIN)  # start, request close-out, request extension


def may_verify(state: ProblemState, actor: Actor) -> bool:
    """The verifying authority of an item: the unit's district_reviewer for district-found items,
    an inspector for city-found ones. (Four-eyes is checked separately.)"""
    if state.source is ProblemSource.CITY:
        return actor.role is Role.INSPECTOR
    return actor.role is Role.DISTRICT_REVIEWER and actor.unit == state.unit


def _require_verifier(state: ProblemState, actor: Actor, what: str) -> None:
    if not may_verify(state, actor):
        needed = ("an inspector" if state.source is ProblemSource.CITY
                  else f"the district_reviewer of {state.unit}")
        raise ForbiddenError(f"{what} of a {state.source}-found item needs {needed}; "
                             f"{actor.role} of {actor.unit or 'the city'} may not")


def _require_verifier_or_city_admin(state: ProblemState, actor: Actor, what: str) -> None:
    if actor.role is not Role.CITY_ADMIN:
        _require_verifier(state, actor, what)


def _deadline_for(kind: DeadlineKind, deadline: date | None, *, today: date,
                  rules: RectificationRules) -> date:
    if kind is DeadlineKind.IMMEDIATE:
        return today + timedelta(days=rules.immediate_days)
    assert deadline is not None  # the command's validator guarantees it
    if deadline < today:
        raise InvalidCommandError(f"整改限期 {deadline} is before the registration day {today}")
    return deadline


# ------------------------------------------------------------------------------------------
# Problem items: decide


def decide_register_problem(
    state: ProblemState, sequence: UnitSequenceState, cmd: c.RegisterProblem, *,
    project: ProjectRef | None, actor: Actor, now: datetime,
    rules: RectificationRules = EZHOU_2024,
) -> list[Event]:
    """登记: allocate the next 序号 of the project's unit and register the item.

    `state` is the (normally empty) state of `problem-<cmd.problem_id>`; `sequence` the unit's
    counter; `project` this service's view of the project (None: unknown, refused). A retry of the
    same registration returns no events.
    """
    _require_commander(actor)
    if project is None:
        raise NotFoundError(f"unknown project {cmd.project_id}: a problem needs a known project")
    if project.project_id != cmd.project_id:
        raise ValueError("the project given does not match the command")
    if sequence.unit != project.unit:
        raise ValueError(f"counter of unit {sequence.unit} given for a project of {project.unit}")
    _require_own_unit(actor, project.unit)
    _require_role(actor, _REGISTRANTS[cmd.source], f"registering a {cmd.source} item")
    if state.is_registered:
        if (state.problem_id == cmd.problem_id and state.source is cmd.source
                and state.source_ref == cmd.source_ref and state.project_id == cmd.project_id
                and state.description == cmd.description):
            return []  # the same registration again (a retry, a redelivery): already done
        raise _illegal(state, "register it again")
    if cmd.problem_id in sequence.allocations:
        return []
    if cmd.source is ProblemSource.LEDGER and not cmd.ledger_reason:
        raise InvalidCommandError("a ledger item needs the ledger reason")
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


def decide_start_rectification(state: ProblemState, cmd: c.StartRectification, *, actor: Actor,
                               now: datetime) -> list[Event]:
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    _require_status(state, {ProblemStatus.REGISTERED}, "start rectification")
    _require_role(actor, _WORKERS, "starting rectification")
    return [e.RectificationStarted(
        problem_id=state.problem_id, unit=state.unit, plan=cmd.plan,
        responsible_person=cmd.responsible_person or state.responsible_person,
        started_by=actor.id)]


def decide_request_close_out(state: ProblemState, cmd: c.RequestCloseOut, *, actor: Actor,
                             now: datetime,
                             evidence_index: Mapping[str, Collection[uuid.UUID]] | None = None,
                             ) -> list[Event]:
    """申请销号 with evidence. With the evidence index (attachment hash -> items it was filed for),
    any attachment already filed for ANOTHER item is flagged (纸面销号) after the request."""
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    _require_status(state, {ProblemStatus.IN_RECTIFICATION}, "request close-out")
    _require_role(actor, _WORKERS, "requesting close-out")
    assert state.problem_id is not None
    requested: list[Event] = [e.CloseOutRequested(
        problem_id=state.problem_id, unit=state.unit, evidence_text=cmd.evidence_text,
        attachment_hashes=cmd.attachment_hashes, requested_by=actor.id, requested_at=now)]
    flags = find_evidence_reuse(state.problem_id, state.unit, cmd.attachment_hashes,
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
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    _require_status(state, {ProblemStatus.CLOSE_OUT_REQUESTED}, "verify close-out")
    _require_verifier(state, actor, "verifying close-out")
    if actor.id == state.close_out_requested_by:
        raise FourEyesError("the close-out must be verified by someone other than its requester")
    return [e.CloseOutVerified(problem_id=state.problem_id, unit=state.unit, verified_by=actor.id,
                               verifier_role=str(actor.role), conclusion=cmd.conclusion,
                               verified_at=now)]


def decide_return_close_out(state: ProblemState, cmd: c.ReturnCloseOut, *, actor: Actor,
                            now: datetime) -> list[Event]:
    """退回: the verifying authority sends the item back to rectification with a reason."""
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    _require_status(state, {ProblemStatus.CLOSE_OUT_REQUESTED}, "return close-out")
    _require_verifier(state, actor, "returning close-out")
    if actor.id == state.close_out_requested_by:
        raise FourEyesError("a close-out request is judged by someone other than its requester")
    return [e.CloseOutReturned(problem_id=state.problem_id, unit=state.unit, reason=cmd.reason,
                               returned_by=actor.id)]


def decide_request_extension(state: ProblemState, cmd: c.RequestExtension, *, actor: Actor,
                             now: datetime) -> list[Event]:
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    _require_status(state, {ProblemStatus.REGISTERED, ProblemStatus.IN_RECTIFICATION},
                    "request an extension")
    _require_role(actor, _WORKERS, "requesting an extension")
    if state.pending_extension is not None:
        raise IllegalTransitionError(
            f"cannot request an extension: problem {state.problem_id} is {state.status} with an "
            f"extension request pending")
    assert state.deadline is not None
    if cmd.new_deadline <= state.deadline:
        raise InvalidCommandError(
            f"an extension must move the deadline later than {state.deadline}")
    return [e.ExtensionRequested(problem_id=state.problem_id, unit=state.unit,
                                 current_deadline=state.deadline, new_deadline=cmd.new_deadline,
                                 reason=cmd.reason, requested_by=actor.id)]


def decide_extension(state: ProblemState, cmd: c.DecideExtension, *, actor: Actor,
                     now: datetime) -> list[Event]:
    """Approve or reject the pending extension: the verifying authority or city_admin, never the
    requester. Allowed while the item is open (a close-out may have been requested meanwhile)."""
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    pending = state.pending_extension
    if not state.is_open or pending is None:
        raise IllegalTransitionError(
            f"cannot decide an extension: problem {state.problem_id} is {state.status} with no "
            f"extension request pending")
    _require_verifier_or_city_admin(state, actor, "deciding an extension")
    if actor.id == pending.requested_by:
        raise FourEyesError("an extension is decided by someone other than its requester")
    assert state.deadline is not None
    return [e.ExtensionDecided(
        problem_id=state.problem_id, unit=state.unit, approved=cmd.approved,
        requested_deadline=pending.new_deadline,
        deadline=pending.new_deadline if cmd.approved else state.deadline,
        reason=cmd.reason, decided_by=actor.id)]


def decide_reopen_problem(
    state: ProblemState, sequence: UnitSequenceState, cmd: c.ReopenProblem, *, actor: Actor,
    now: datetime, rules: RectificationRules = EZHOU_2024,
) -> list[Event]:
    """反弹: a closed item is found again. Marks the original reopened and registers a NEW item
    (next 序号 of the unit, `reopened_from` = the original) that counts against the unit. The new
    item is city-found if the city found it again, self-found if the unit did."""
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    if state.status is ProblemStatus.REOPENED and state.reopened_as == cmd.new_problem_id:
        return []  # the same reopening again: already done
    _require_status(state, {ProblemStatus.CLOSED}, "reopen")
    _require_role(actor, (*_DISTRICT, Role.INSPECTOR, Role.CITY_ADMIN), "reopening (反弹)")
    if sequence.unit != state.unit:
        raise ValueError(f"counter of unit {sequence.unit} given for an item of {state.unit}")
    if cmd.new_problem_id in sequence.allocations or cmd.new_problem_id == state.problem_id:
        raise InvalidCommandError(f"problem id {cmd.new_problem_id} is already taken")
    assert state.problem_id is not None
    source = ProblemSource.SELF_INSPECTION if actor.role.is_district else ProblemSource.CITY
    today = rules.local_date(now)
    deadline = _deadline_for(cmd.deadline_kind, cmd.deadline, today=today, rules=rules)
    seq_no = sequence.last_seq_no + 1
    return [
        e.ProblemReopened(problem_id=state.problem_id, unit=state.unit,
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


def decide_withdraw_problem(state: ProblemState, cmd: c.WithdrawProblem, *, actor: Actor,
                            now: datetime) -> list[Event]:
    """撤销 (registered in error): approved by the verifying authority or city_admin, who is
    recorded as the approver and may not be the official who registered the item."""
    _require_commander(actor)
    _require_registered(state)
    _require_own_unit(actor, state.unit)
    _require_status(state, {ProblemStatus.REGISTERED, ProblemStatus.IN_RECTIFICATION}, "withdraw")
    _require_verifier_or_city_admin(state, actor, "approving a withdrawal")
    if actor.id == state.registered_by:
        raise FourEyesError("a withdrawal is approved by someone other than the registrant")
    return [e.ProblemWithdrawn(problem_id=state.problem_id, unit=state.unit, reason=cmd.reason,
                               approved_by=actor.id, approver=actor.name, withdrawn_at=now)]


# ------------------------------------------------------------------------------------------
# Problem items: evolve


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
                           close_out_requested_by=None, times_returned=state.times_returned + 1)
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


def evolve_sequence(state: UnitSequenceState, event: Event) -> UnitSequenceState:
    if not isinstance(event, e.SeqNoAllocated):
        raise TypeError(f"not a sequence event: {type(event).__name__}")
    return replace(state, last_seq_no=max(state.last_seq_no, event.seq_no),
                   allocations={**state.allocations, event.problem_id: event.seq_no})


def fold_problem(events: Iterable[Event], problem_id: uuid.UUID | None = None) -> ProblemState:
    state = ProblemState(problem_id=problem_id)
    for event in events:
        state = evolve(state, event)
    return state


def fold_sequence(unit: str, events: Iterable[Event]) -> UnitSequenceState:
    state = UnitSequenceState(unit=unit)
    for event in events:
        state = evolve_sequence(state, event)
    return state


# ------------------------------------------------------------------------------------------
# Derived facts


def is_overdue(state: ProblemState, now: datetime, rules: RectificationRules = EZHOU_2024) -> bool:
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


def problem_list_rows(items: Iterable[ProblemState], *, unit: str) -> tuple[e.ProblemListRow, ...]:
    """The unit's rows of 附件2 by 序号: every item ever registered except withdrawn ones (a gap
    in 序号 is the honest trace of a withdrawal; numbers are never closed up)."""
    rows = [
        e.ProblemListRow(
            problem_id=item.problem_id, seq_no=item.seq_no, township=item.township,
            project_name=item.project_name, project_year=item.project_year,
            description=item.description, deadline=item.deadline,
            deadline_kind=item.deadline_kind, responsible_person=item.responsible_person,
            status=str(item.status))
        for item in items
        if item.unit == unit and item.is_registered and item.status is not ProblemStatus.WITHDRAWN
    ]
    return tuple(sorted(rows, key=lambda row: row.seq_no))


# ------------------------------------------------------------------------------------------
# Automatic items (from registry and inspection events)

LEDGER_REASON_TEXT = {
    "not_operating": "项目未投入运营",
    "underperforming": "项目运营不佳，作用发挥不够",
}
LEDGER_DETAIL_TEXT = {
    "fewer_than_min_services": "专业养老服务不足3项",
    "no_meal_assistance": "未开展助餐服务",
}


def ledger_description(reason: str, reason_details: Iterable[str] = ()) -> str:
    """存在的问题隐患 of a ledger item, from the registry's reason codes (unknown codes as is)."""
    text = LEDGER_REASON_TEXT.get(reason, reason)
    details = [LEDGER_DETAIL_TEXT.get(code, code) for code in reason_details]
    return f"列入台账：{text}" + (f"（{'；'.join(details)}）" if details else "")


def open_ledger_keys(items: Iterable[ProblemState]) -> set[tuple[str, str]]:
    """(project_id, ledger reason) of every open ledger item: those block a second item."""
    return {(item.project_id, item.ledger_reason or "") for item in items
            if item.source is ProblemSource.LEDGER and item.is_open}


def registration_for_ledger_entry(
    *, ledger_entry_id: uuid.UUID | str, project_id: str, reason: str,
    open_ledger_items: Collection[tuple[str, str]], now: datetime,
    reason_details: Iterable[str] = (), rules: RectificationRules = EZHOU_2024,
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
        description=ledger_description(reason, reason_details),
        deadline_kind=DeadlineKind.IMMEDIATE if immediate else DeadlineKind.DATE,
        deadline=None if immediate else rules.ledger_item_deadline,
        source=ProblemSource.LEDGER, source_ref=str(ledger_entry_id), ledger_reason=reason)


def registration_for_finding(
    *, finding_id: uuid.UUID | str, project_id: str, unit: str, text: str, deadline: date | None,
    project: ProjectRef | None, now: datetime, rules: RectificationRules = EZHOU_2024,
) -> c.RegisterProblem:
    """An inspection FindingRecorded (finding_id, project_id, unit, text, deadline) opens a
    city-found item. No deadline, or one already past, makes it 立行立改. The problem id derives
    from the finding id (exactly once under redelivery). `project`: this service's view of the
    project; a handler that has not seen it may build one from the finding's own project fields."""
    if project is None:
        raise NotFoundError(f"unknown project {project_id}: a finding needs a known project")
    if project.unit != unit:
        raise InvalidCommandError(f"finding says unit {unit}, the project belongs to {project.unit}")
    immediate = deadline is None or deadline < rules.local_date(now)
    return c.RegisterProblem(
        problem_id=finding_problem_id(finding_id), project_id=project_id, description=text,
        deadline_kind=DeadlineKind.IMMEDIATE if immediate else DeadlineKind.DATE,
        deadline=None if immediate else deadline,
        source=ProblemSource.CITY, source_ref=str(finding_id))


# ------------------------------------------------------------------------------------------
# Reports


def _require_reporter_of(actor: Actor, unit: str, what: str) -> None:
    _require_commander(actor)
    _require_own_unit(actor, unit)
    _require_role(actor, (Role.DISTRICT_REPORTER,), what)


def _require_submittable(report: ReportState, what: str) -> None:
    if report.status not in (None, ReportStatus.RETURNED):
        raise IllegalTransitionError(f"cannot {what}: report {report.report_id} is {report.status}")


def decide_submit_monthly_list(
    report: ReportState, cmd: c.SubmitMonthlyList, *, rows: Sequence[e.ProblemListRow],
    actor: Actor, now: datetime, rules: RectificationRules = EZHOU_2024,
) -> list[Event]:
    """The unit's 填报人 submits the frozen snapshot `rows` (see `problem_list_rows`); accepted
    when late, and marked late. Resubmission is allowed after a return."""
    _require_reporter_of(actor, cmd.unit, "submitting a monthly list")
    if report.unit != cmd.unit or report.report_id != monthly_list_report_id(cmd.unit, cmd.month):
        raise ValueError("the report state given is not this unit's list for this month")
    if cmd.month not in rules.monthly_list_months:
        raise InvalidCommandError(f"{cmd.month} is not a month of the self-inspection phase")
    year, month = (int(part) for part in cmd.month.split("-"))
    if rules.local_date(now) < date(year, month, 1):
        raise InvalidCommandError(f"the list for {cmd.month} cannot be submitted before the month")
    _require_submittable(report, "submit the monthly list")
    due = rules.monthly_list_due(cmd.month)
    return [e.MonthlyListSubmitted(
        report_id=report.report_id, unit=cmd.unit, month=cmd.month, version=report.version + 1,
        rows=tuple(sorted(rows, key=lambda row: row.seq_no)), submitted_by=actor.id,
        submitter=actor.name, submitted_at=now, due=due, late=now > due)]


def decide_return_monthly_list(report: ReportState, cmd: c.ReturnMonthlyList, *, actor: Actor,
                               now: datetime) -> list[Event]:
    """The city (city_admin) returns a submitted list with a comment; the unit resubmits."""
    _require_commander(actor)
    _require_role(actor, (Role.CITY_ADMIN,), "returning a monthly list")
    if report.status is None:
        raise NotFoundError(f"no monthly list {report.report_id} has been submitted")
    if report.status not in (ReportStatus.SUBMITTED, ReportStatus.REVIEWED):
        raise IllegalTransitionError(
            f"cannot return the monthly list: report {report.report_id} is {report.status}")
    return [e.MonthlyListReturned(report_id=report.report_id, unit=report.unit, month=report.period,
                                  version=report.version, comment=cmd.comment,
                                  returned_by=actor.id)]


def decide_submit_self_inspection_report(
    report: ReportState, cmd: c.SubmitSelfInspectionReport, *, actor: Actor, now: datetime,
    rules: RectificationRules = EZHOU_2024,
) -> list[Event]:
    _require_reporter_of(actor, cmd.unit, "submitting the self-inspection report")
    if report.unit != cmd.unit or report.report_id != self_inspection_report_id(cmd.unit):
        raise ValueError("the report state given is not this unit's self-inspection report")
    _require_submittable(report, "submit the self-inspection report")
    due = rules.due_at(rules.self_inspection_report_due)
    return [e.SelfInspectionReportSubmitted(
        report_id=report.report_id, unit=cmd.unit, version=report.version + 1, text=cmd.text,
        attachment_hashes=cmd.attachment_hashes, submitted_by=actor.id, submitter=actor.name,
        submitted_at=now, due=due, late=now > due)]


def decide_submit_typical_case(
    report: ReportState, cmd: c.SubmitTypicalCase, *, actor: Actor, now: datetime,
    rules: RectificationRules = EZHOU_2024,
) -> list[Event]:
    _require_reporter_of(actor, cmd.unit, "submitting a typical case")
    if report.unit != cmd.unit or report.report_id != typical_case_report_id(cmd.unit, cmd.case_id):
        raise ValueError("the report state given is not this typical case")
    _require_submittable(report, "submit the typical case")
    due = rules.due_at(rules.typical_case_due)
    return [e.TypicalCaseSubmitted(
        report_id=report.report_id, unit=cmd.unit, version=report.version + 1, title=cmd.title,
        text=cmd.text, attachment_hashes=cmd.attachment_hashes, submitted_by=actor.id,
        submitter=actor.name, submitted_at=now, due=due, late=now > due)]


def decide_review_report(report: ReportState, cmd: c.ReviewReport, *, actor: Actor,
                         now: datetime) -> list[Event]:
    """The unit's 审核人 approves the submitted report, or sends it back with a comment. Never
    the 填报人 who submitted it."""
    _require_commander(actor)
    _require_own_unit(actor, report.unit)
    _require_role(actor, (Role.DISTRICT_REVIEWER,), "reviewing a report")
    if report.status is None:
        raise NotFoundError(f"report {report.report_id} has not been submitted")
    if report.status is not ReportStatus.SUBMITTED:
        raise IllegalTransitionError(
            f"cannot review: report {report.report_id} is {report.status}")
    if actor.id == report.submitted_by:
        raise FourEyesError("a report is reviewed by someone other than its submitter")
    if not cmd.approved and not cmd.comment:
        raise InvalidCommandError("sending a report back needs a comment")
    return [e.ReportReviewed(report_id=report.report_id, unit=report.unit, kind=report.kind,
                             version=report.version, approved=cmd.approved, comment=cmd.comment,
                             reviewed_by=actor.id, reviewer=actor.name, reviewed_at=now)]


def _submitted(report: ReportState, event: e.MonthlyListSubmitted | e.SelfInspectionReportSubmitted
               | e.TypicalCaseSubmitted, **fields: object) -> ReportState:
    first = report.first_submitted_at is None
    return replace(
        report, status=ReportStatus.SUBMITTED, version=event.version,
        submitted_by=event.submitted_by, submitter=event.submitter,
        submitted_at=event.submitted_at,
        first_submitted_at=event.submitted_at if first else report.first_submitted_at,
        due=event.due, late=event.late if first else report.late,
        reviewed_by=None, reviewer=None, reviewed_at=None, **fields)


def evolve_report(report: ReportState, event: Event) -> ReportState:
    match event:
        case e.MonthlyListSubmitted():
            return _submitted(report, event, period=event.month, rows=event.rows)
        case e.SelfInspectionReportSubmitted():
            return _submitted(report, event, text=event.text,
                              attachment_hashes=event.attachment_hashes)
        case e.TypicalCaseSubmitted():
            return _submitted(report, event, title=event.title, text=event.text,
                              attachment_hashes=event.attachment_hashes)
        case e.ReportReviewed():
            if event.approved:
                return replace(report, status=ReportStatus.REVIEWED,
                               reviewed_by=event.reviewed_by, reviewer=event.reviewer,
                               reviewed_at=event.reviewed_at)
            return replace(report, status=ReportStatus.RETURNED,
                           comments=(*report.comments, event.comment))
        case e.MonthlyListReturned():
            return replace(report, status=ReportStatus.RETURNED,
                           comments=(*report.comments, event.comment))
    raise TypeError(f"not a report event: {type(event).__name__}")


def new_report(report_id: str, kind: ReportKind, unit: str, period: str = "") -> ReportState:
    return ReportState(report_id=report_id, kind=kind, unit=unit, period=period)


def fold_report(report: ReportState, events: Iterable[Event]) -> ReportState:
    for event in events:
        report = evolve_report(report, event)
    return report
