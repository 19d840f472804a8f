"""Projects (facilities) and their place on the 台账 ledger: state, fold, decide. Pure.

- fewer than `min_services` professional services, or a required one (助餐) missing, makes a
  project underperforming whatever was claimed;
- not_operating and underperforming projects are on the 台账 ledger with the reason, and leave it
  only through an assessment finding them operating, with evidence text and attachments;
- project names are unique within (unit, type): the project id derives from them, so the event
  store's "no stream yet" check enforces it even under concurrent registrations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from services.registry import commands as c
from services.registry import events as e
from services.registry.domain.rules import (
    ASSESSING_ROLES,
    MAX_TEXT_LENGTH,
    REGISTERING_ROLES,
    SHA256_HEX,
    Problems,
    authorise,
    check_not_future,
    check_operator,
    check_required_text,
    check_services,
    effective_status,
    ledger_entry_id_for,
    project_id_for,
    project_problems,
    tidy_operator,
    tidy_text,
)
from services.registry.events import LEDGER_STATUSES, OperatingStatus
from shared.campaign import Campaign
from shared.errors import FieldProblem, IllegalTransitionError, NotFoundError, ValidationFailed
from shared.messages import Actor, Event


@dataclass(frozen=True, slots=True)
class ProjectState:
    project_id: str
    registration: e.ProjectRegistered | None = None
    operator: e.Operator | None = None
    services: tuple[str, ...] = ()
    status: OperatingStatus | None = None
    status_reasons: tuple[str, ...] = ()
    open_ledger_entry: str | None = None
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
    def unit(self) -> str:
        return self._registered().unit

    def _registered(self) -> e.ProjectRegistered:
        if self.registration is None:
            raise NotFoundError(f"project {self.project_id} is not registered")
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
        return replace(state, open_ledger_entry=event.entry_id, ledger_entries=state.ledger_entries + 1)
    if isinstance(event, e.LedgerEntryCleared):
        return replace(state, open_ledger_entry=None)
    raise TypeError(f"not a project event: {type(event).__name__}")


def _require_project(state: ProjectState) -> e.ProjectRegistered:
    if state.registration is None:
        raise NotFoundError(f"project {state.project_id} is not registered")
    return state.registration


def _require_active(state: ProjectState, what: str) -> e.ProjectRegistered:
    registration = _require_project(state)
    if state.retired:
        raise IllegalTransitionError(f"project {state.project_id} is retired; cannot {what}")
    return registration


def _ledger_added(state: ProjectState, registration: e.ProjectRegistered, status: OperatingStatus,
                  reasons: tuple[str, ...], listed_on: date) -> e.LedgerEntryAdded:
    return e.LedgerEntryAdded(
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
    problems = project_problems(cmd, campaign, today)
    if problems:
        raise ValidationFailed(problems)

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
        if (cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL
                and _same_registration(state.registration, registered)):
            return []
        raise ValidationFailed([FieldProblem(
            "name", f"a {campaign.project_type(cmd.project_type).name} named {state.registration.name!r} "
                    f"is already registered in {campaign.unit(cmd.unit).name}")])

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
        problems.add("claimed_status", "retire a project with its own command and a reason")
    check_required_text(problems, "assessor", cmd.assessor)
    check_required_text(problems, "evidence", cmd.evidence, max_length=MAX_TEXT_LENGTH)
    check_not_future(problems, "assessed_on", cmd.assessed_on, today)
    if state.last_assessed_on and cmd.assessed_on < state.last_assessed_on:
        problems.add("assessed_on", f"is before the latest assessment ({state.last_assessed_on})")
    for index, digest in enumerate(cmd.attachment_hashes):
        if not SHA256_HEX.fullmatch(digest):
            problems.add(f"attachment_hashes[{index}]",
                         "is not a SHA-256 hex digest (64 lowercase hex digits)")
    if cmd.services is not None:
        check_services(problems, "services", cmd.services, campaign)
    problems.raise_if_any()

    services = tuple(cmd.services) if cmd.services is not None else state.services
    status, reasons = effective_status(cmd.claimed_status, services, campaign)
    clears_ledger = state.on_ledger and status == OperatingStatus.OPERATING
    if clears_ledger and not cmd.attachment_hashes:
        raise ValidationFailed([FieldProblem(
            "attachment_hashes", "leaving the 台账 needs evidence: attach at least one file")])

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
        raise IllegalTransitionError(f"project {state.project_id} is already retired")
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
