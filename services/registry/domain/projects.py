"""Projects (facilities) and their place on the 台账 ledger: state, fold, decide. Pure.

- fewer than `min_services` professional services, or a required one (助餐) missing, makes a
  project underperforming whatever was claimed;
- not_operating and underperforming projects are on the 台账 ledger with the reason, and leave it
  only through an assessment finding them operating, with evidence text and attachments;
- a verified 销号 of the problem item opened from an entry marks the entry rectified (整改完成,
  with the verifying event; rectification tells us, subscribers.py); the project stays listed until
  its next assessment: operating clears the entry, idle again opens a new entry (and so a new
  item) that supersedes the rectified one; a 反弹 of that item takes the mark back;
- project names are unique within (unit, type): the project id derives from them, so the event
  store's "no stream yet" check enforces it even under concurrent registrations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from services.registry import commands as c
from services.registry import events as e
from services.registry.domain.rules import (
    _WHAT_ZH, ASSESSING_ROLES, MAX_TEXT_LENGTH, REGISTERING_ROLES, SHA256_HEX, Problems, authorise,
    check_not_future, check_operator, check_required_text, check_services, effective_status,
    ledger_entry_id_for, project_id_for, project_problems, refused, tidy_operator, tidy_text)
from services.registry.events import LEDGER_STATUSES, OperatingStatus
from shared.campaign import Campaign
from shared.errors import ForbiddenError, IllegalTransitionError, NotFoundError
from shared.messages import SYSTEM_ACTOR, Actor, Event

@dataclass(frozen=True, slots=True)
class ProjectState:
    project_id: str
    registration: e.ProjectRegistered | None = None
    operator: e.Operator | None = None
    services: tuple[str, ...] = ()
    status: OperatingStatus | None = None
    status_reasons: tuple[str, ...] = ()
    open_ledger_entry: str | None = None
    open_ledger_reason: str | None = None
    # The 销号 that marked the open entry rectified (整改完成), until the next assessment.
    rectification: e.LedgerEntryRectified | None = None
    ledger_entries: int = 0
    assessments: int = 0
    last_assessed_on: date | None = None
    retirement: e.ProjectRetired | None = None

    @property
    def exists(self) -> bool:
        return self.registration is not None

    @property
    def retired(self) -> bool:
        return self.retirement is not None

    @property
    def on_ledger(self) -> bool:
        return self.open_ledger_entry is not None

    @property
    def ledger_rectified(self) -> bool:
        return self.rectification is not None

    @property
    def entry_ids(self) -> tuple[str, ...]:
        """Every 台账 entry this project ever had, oldest first (their ids derive from it)."""
        return tuple(ledger_entry_id_for(self.project_id, n) for n in range(1, self.ledger_entries + 1))

    @property
    def unit(self) -> str:
        return self._registered().unit

    def _registered(self) -> e.ProjectRegistered:
        if self.registration is None:
            raise NotFoundError(f"project {self.project_id} is not registered",
                                zh="未找到该项目，请检查项目编号。")
        return self.registration


def evolve_project(state: ProjectState, event: Event) -> ProjectState:
    if isinstance(event, e.ProjectRegistered):
        return replace(state, registration=event, operator=event.operator, services=event.services,
                       status=event.status, status_reasons=event.status_reasons)
    if isinstance(event, e.OperatorChanged):
        return replace(state, operator=event.operator)
    if isinstance(event, e.ServicesChanged):
        return replace(state, services=event.services, status=event.status,
                       status_reasons=event.status_reasons)
    if isinstance(event, e.ProjectAssessed):
        return replace(state, services=event.services, status=event.status,
                       status_reasons=event.status_reasons, assessments=event.assessment_no,
                       last_assessed_on=event.assessed_on)
    if isinstance(event, e.ProjectRetired):
        return replace(state, retirement=event, status=OperatingStatus.RETIRED)
    if isinstance(event, e.LedgerEntryAdded):
        return replace(state, open_ledger_entry=event.entry_id, open_ledger_reason=event.reason,
                       rectification=None, ledger_entries=state.ledger_entries + 1)
    if isinstance(event, e.LedgerEntryRectified):
        if event.entry_open and event.entry_id == state.open_ledger_entry:
            return replace(state, rectification=event)
        return state
    if isinstance(event, e.LedgerRectificationReopened):
        if event.entry_id == state.open_ledger_entry:
            return replace(state, rectification=None)
        return state
    if isinstance(event, e.LedgerEntryCleared):
        return replace(state, open_ledger_entry=None, open_ledger_reason=None, rectification=None)
    raise TypeError(f"not a project event: {type(event).__name__}")


def _require_project(state: ProjectState) -> e.ProjectRegistered:
    if state.registration is None:
        raise NotFoundError(f"project {state.project_id} is not registered",
                            zh="未找到该项目，请检查项目编号。")
    return state.registration


def _require_active(state: ProjectState, what: str) -> e.ProjectRegistered:
    registration = _require_project(state)
    if state.retired:
        doing = _WHAT_ZH.get(what, what)
        raise IllegalTransitionError(f"project {state.project_id} is retired; cannot {what}",
                                     zh=f"该项目已退出（{registration.name}），不能再{doing}。")
    return registration


def _ledger_added(state: ProjectState, registration: e.ProjectRegistered, status: OperatingStatus,
                  reasons: tuple[str, ...], listed_on: date,
                  supersedes: str | None = None) -> e.LedgerEntryAdded:
    return e.LedgerEntryAdded(
        supersedes=supersedes,
        entry_id=ledger_entry_id_for(state.project_id, state.ledger_entries + 1),
        project_id=state.project_id, project_type=registration.project_type,
        project_name=registration.name, project_year=registration.project_year,
        unit=registration.unit, township=registration.township, village=registration.village,
        provincial_key=registration.provincial_key, reason=status.value, reason_details=reasons,
        status=status, listed_on=listed_on)


def _same_registration(existing: e.ProjectRegistered, proposed: e.ProjectRegistered) -> bool:
    return existing.model_dump() == proposed.model_dump()


def decide_register_project(state: ProjectState, cmd: c.RegisterProject, *, actor: Actor,
                            now: datetime, campaign: Campaign) -> list[Event]:
    authorise(actor, cmd.unit, REGISTERING_ROLES, "register projects")
    expected_id = project_id_for(cmd.unit, cmd.project_type, cmd.name)
    if state.project_id != expected_id:
        raise ValueError(f"state of {state.project_id} given for project {expected_id}")
    today = campaign.local_date(now)
    project_problems(cmd, campaign, today).raise_if_any()

    township = campaign.township(cmd.township)
    assert township is not None  # checked above
    status, reasons = effective_status(cmd.claimed_status, cmd.services, campaign)
    registered = e.ProjectRegistered(
        project_id=state.project_id, project_type=cmd.project_type, name=tidy_text(cmd.name) or "",
        unit=cmd.unit, township=township.name, township_code=township.code,
        village=tidy_text(cmd.village), project_year=cmd.project_year,
        provincial_key=cmd.provincial_key, operator=tidy_operator(cmd.operator),
        services=tuple(cmd.services), claimed_status=cmd.claimed_status, status=status,
        status_reasons=reasons)

    if state.registration is not None:
        if cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL and _same_registration(state.registration, registered):
            return []
        type_name = campaign.project_type(cmd.project_type).name
        raise refused("name", f"a {type_name} named {state.registration.name!r} is already "
                              f"registered in {campaign.unit(cmd.unit).name}",
                      f"“{state.registration.name}”已在{campaign.unit(cmd.unit).name}登记为{type_name}，"
                      "请勿重复登记")

    decided: list[Event] = [registered]
    if status in LEDGER_STATUSES:
        decided.append(_ledger_added(state, registered, status, reasons, today))
    return decided


def decide_change_operator(state: ProjectState, cmd: c.ChangeOperator, *, actor: Actor,
                           now: datetime, campaign: Campaign) -> list[Event]:
    registration = _require_active(state, "change its operator")
    authorise(actor, registration.unit, REGISTERING_ROLES, "change operators")
    problems = Problems()
    check_operator(problems, cmd.operator)
    check_not_future(problems, "changed_on", cmd.changed_on, campaign.local_date(now))
    problems.raise_if_any()
    operator = tidy_operator(cmd.operator)
    if operator == state.operator:
        return []
    return [e.OperatorChanged(
        project_id=state.project_id, project_type=registration.project_type, unit=registration.unit,
        township=registration.township, previous_operator=state.operator or registration.operator,
        operator=operator, changed_on=cmd.changed_on)]


def decide_change_services(state: ProjectState, cmd: c.ChangeServices, *, actor: Actor,
                           now: datetime, campaign: Campaign) -> list[Event]:
    registration = _require_active(state, "change its services")
    authorise(actor, registration.unit, REGISTERING_ROLES, "change services")
    problems = Problems()
    check_services(problems, "services", cmd.services, campaign)
    problems.raise_if_any()
    if set(cmd.services) == set(state.services):
        return []

    failures = campaign.service_rule_failures(cmd.services)
    status, reasons = state.status, state.status_reasons
    assert status is not None
    # Losing services can only make things worse here; getting better needs an assessment.
    if status == OperatingStatus.OPERATING and failures:
        status, reasons = OperatingStatus.UNDERPERFORMING, failures
    decided: list[Event] = [e.ServicesChanged(
        project_id=state.project_id, project_type=registration.project_type, unit=registration.unit,
        township=registration.township, previous_services=state.services,
        services=tuple(cmd.services), meets_service_rule=not failures, status=status,
        status_reasons=reasons)]
    if status in LEDGER_STATUSES and not state.on_ledger:
        decided.append(_ledger_added(state, registration, status, reasons, campaign.local_date(now)))
    return decided


def decide_assess_project(state: ProjectState, cmd: c.AssessProject, *, actor: Actor,
                          now: datetime, campaign: Campaign) -> list[Event]:
    registration = _require_active(state, "assess it")
    authorise(actor, registration.unit, ASSESSING_ROLES, "assess projects")
    today = campaign.local_date(now)
    problems = Problems()
    if cmd.claimed_status == OperatingStatus.RETIRED:
        problems.add("claimed_status", "retire a project with its own command and a reason",
                     "评估结论不能是“已退出”；项目退出请另行办理并说明原因")
    check_required_text(problems, "assessor", cmd.assessor)
    check_required_text(problems, "evidence", cmd.evidence, max_length=MAX_TEXT_LENGTH)
    check_not_future(problems, "assessed_on", cmd.assessed_on, today)
    if state.last_assessed_on and cmd.assessed_on < state.last_assessed_on:
        problems.add("assessed_on", f"is before the latest assessment ({state.last_assessed_on})",
                     f"早于上一次评估（{state.last_assessed_on}）")
    for index, digest in enumerate(cmd.attachment_hashes):
        if not SHA256_HEX.fullmatch(digest):
            problems.add(f"attachment_hashes[{index}]",
                         "is not a SHA-256 hex digest (64 lowercase hex digits)",
                         "不是有效的附件摘要（64位小写十六进制SHA-256）")
    if cmd.services is not None:
        check_services(problems, "services", cmd.services, campaign)
    problems.raise_if_any()

    services = tuple(cmd.services) if cmd.services is not None else state.services
    status, reasons = effective_status(cmd.claimed_status, services, campaign)
    clears_ledger = state.on_ledger and status == OperatingStatus.OPERATING
    if clears_ledger and not cmd.attachment_hashes:
        raise refused("attachment_hashes", "leaving the 台账 needs evidence: attach at least one file",
                      "：移出台账需要佐证材料，请至少上传一个附件")

    assert state.status is not None
    evidence = cmd.evidence.strip()
    decided: list[Event] = []
    if cmd.services is not None and set(services) != set(state.services):
        decided.append(e.ServicesChanged(
            project_id=state.project_id, project_type=registration.project_type,
            unit=registration.unit, township=registration.township,
            previous_services=state.services, services=services,
            meets_service_rule=campaign.meets_service_rule(services), status=status,
            status_reasons=reasons))
    assessment_no = state.assessments + 1
    decided.append(e.ProjectAssessed(
        project_id=state.project_id, project_type=registration.project_type, unit=registration.unit,
        township=registration.township, provincial_key=registration.provincial_key,
        assessment_no=assessment_no, claimed_status=cmd.claimed_status, status=status,
        previous_status=state.status, status_reasons=reasons, services=services,
        assessor=cmd.assessor.strip(), assessed_on=cmd.assessed_on, evidence=evidence,
        attachment_hashes=tuple(cmd.attachment_hashes)))
    if status in LEDGER_STATUSES and not state.on_ledger:
        decided.append(_ledger_added(state, registration, status, reasons, cmd.assessed_on))
    elif status in LEDGER_STATUSES and state.ledger_rectified:
        # Rectified, and still idle: back on the 台账 with a new entry (rectification opens a new
        # item from it); the rectified entry is superseded, never reopened.
        decided.append(_ledger_added(state, registration, status, reasons, cmd.assessed_on,
                                     supersedes=state.open_ledger_entry))
    elif clears_ledger:
        assert state.open_ledger_entry is not None
        decided.append(e.LedgerEntryCleared(
            entry_id=state.open_ledger_entry, project_id=state.project_id,
            project_type=registration.project_type, unit=registration.unit,
            township=registration.township, cleared_on=cmd.assessed_on, assessment_no=assessment_no,
            assessor=cmd.assessor.strip(), evidence=evidence,
            attachment_hashes=tuple(cmd.attachment_hashes)))
    return decided


def decide_retire_project(state: ProjectState, cmd: c.RetireProject, *, actor: Actor,
                          now: datetime, campaign: Campaign) -> list[Event]:
    registration = _require_project(state)
    authorise(actor, registration.unit, REGISTERING_ROLES, "retire projects")
    if state.retired:
        raise IllegalTransitionError(f"project {state.project_id} is already retired",
                                     zh="该项目已办理退出，不能重复办理。")
    problems = Problems()
    check_required_text(problems, "reason", cmd.reason, max_length=MAX_TEXT_LENGTH)
    check_not_future(problems, "retired_on", cmd.retired_on, campaign.local_date(now))
    problems.raise_if_any()
    assert state.status is not None
    # A ledger entry stays open: retiring an idle facility is not how it leaves the 台账.
    return [e.ProjectRetired(
        project_id=state.project_id, project_type=registration.project_type, name=registration.name,
        unit=registration.unit, township=registration.township, previous_status=state.status,
        reason_code=cmd.reason_code, reason=cmd.reason.strip(), retired_on=cmd.retired_on)]


# ----- what rectification tells the registry (its reactions, subscribers.py) ----------------------


def _require_reaction(actor: Actor, what: str) -> None:
    """Only the registry's own reaction to rectification's events records these facts."""
    if actor != SYSTEM_ACTOR:
        raise ForbiddenError(f"{actor.role.value} may not {what}: it follows rectification's "
                             "verified 销号 only", zh="台账整改状态由问题销号自动更新，不能手工修改。")


def decide_mark_ledger_entry_rectified(state: ProjectState, cmd: c.MarkLedgerEntryRectified, *,
                                       actor: Actor, now: datetime,
                                       campaign: Campaign) -> list[Event]:
    """整改完成 on the entry the verified item stands for: the entry it was opened for while that
    is open; else the project's open entry of the same reason (rectification opens no second item
    while one is open for a project and reason, so that item covers a later entry too); else the
    item's own, already cleared, entry (kept on its history)."""
    _require_reaction(actor, "mark a ledger entry rectified")
    registration = _require_project(state)
    if cmd.entry_id not in state.entry_ids:
        raise NotFoundError(f"project {state.project_id} has no ledger entry {cmd.entry_id}",
                            zh="该项目没有这条台账记录。")
    open_entry = state.open_ledger_entry
    covers_open = open_entry is not None and (
        cmd.entry_id == open_entry
        or (cmd.ledger_reason == state.open_ledger_reason and not state.ledger_rectified))
    entry_id = open_entry if covers_open and open_entry is not None else cmd.entry_id
    done = state.rectification
    if covers_open and done is not None and done.problem_id == cmd.problem_id:
        return []  # this item's 销号 is recorded on the open entry already
    return [e.LedgerEntryRectified(
        entry_id=entry_id, project_id=state.project_id, project_type=registration.project_type,
        unit=registration.unit, township=registration.township, entry_open=covers_open,
        problem_id=cmd.problem_id, seq_no=cmd.seq_no, verified_by=cmd.verified_by,
        verifier_role=cmd.verifier_role, conclusion=cmd.conclusion,
        verified_at=cmd.verified_at.astimezone(campaign.tz),  # the campaign's offset, as ours are
        verification_event_id=cmd.verification_event_id)]


def decide_reopen_ledger_rectification(state: ProjectState, cmd: c.ReopenLedgerRectification, *,
                                       actor: Actor, now: datetime,
                                       campaign: Campaign) -> list[Event]:
    """反弹 of the item whose 销号 marked the open entry rectified: the mark goes; anything else
    (another item, an entry no longer open) changes nothing."""
    _require_reaction(actor, "reopen a ledger entry's rectification")
    registration = _require_project(state)
    done = state.rectification
    if done is None or done.problem_id != cmd.problem_id or state.open_ledger_entry is None:
        return []
    return [e.LedgerRectificationReopened(
        entry_id=state.open_ledger_entry, project_id=state.project_id,
        project_type=registration.project_type, unit=registration.unit,
        township=registration.township, problem_id=cmd.problem_id,
        new_problem_id=cmd.new_problem_id, reason=cmd.reason,
        reopening_event_id=cmd.reopening_event_id)]
