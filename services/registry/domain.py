"""Registry rules, pure: decide what happened, then fold it into state.

`decide_*(state, cmd, *, actor, now, campaign, ...) -> list[Event]` checks the principal and the
rules and returns events, or raises ForbiddenError / NotFoundError / IllegalTransitionError /
ValidationFailed (every bad field at once). `evolve(state, event)` folds. No I/O, no clock: time,
the actor, the campaign and the sealer of personal fields come in as arguments.

Rules (DOMAIN.md §2, §3, §8):
- fewer than `min_services` professional services, or a required one (助餐) missing, makes a
  project underperforming whatever was claimed;
- not_operating and underperforming projects are on the 台账 ledger with the reason, and leave it
  only through an assessment finding them operating, with evidence text and attachments;
- a district role acts only in its own unit; leader and auditor never command;
- the township belongs to the unit; years lie in the plan period; phones are valid;
- project names are unique within (unit, type): the project id derives from them, so the event
  store's "no stream yet" check enforces it even under concurrent registrations.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType
from typing import Iterable, Mapping

from services.registry import commands as c
from services.registry import events as e
from services.registry.events import LEDGER_STATUSES, OperatingStatus, OperatorKind
from shared.campaign import Campaign, DeadlineKind, ProjectKind, ProjectType
from shared.errors import (
    FieldProblem,
    ForbiddenError,
    IllegalTransitionError,
    NotFoundError,
    ValidationFailed,
)
from shared.messages import Actor, Event, Role, deterministic_id
from shared.personal_data import (
    Sealer,
    SubjectErasedError,
    mask_phone,
    mobile_problem,
    normalise_phone,
    phone_problem,
)

MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 4000
MAX_HOUSEHOLDS_PER_COMMAND = 5000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HOUSEHOLD_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,39}")
# A household code must not be a person's ID card number or phone: codes travel in clear.
_ID_CARD = re.compile(r"\d{17}[\dXx]")

_REGISTERING_ROLES = (Role.CITY_ADMIN, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)
_ASSESSING_ROLES = (Role.CITY_ADMIN, Role.INSPECTOR, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)


# ----- ids ------------------------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """The identity of a name: full-width/half-width forms, spaces and letter case do not make a
    new one (Chinese names carry no meaningful spaces; "(示例)" and "(示例)" are the same)."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def tidy_text(text: str | None) -> str | None:
    """Strip and collapse runs of spaces in a name-like field; None for blank."""
    if text is None:
        return None
    tidied = " ".join(text.split())
    return tidied or None


def project_id_for(unit: str, project_type: str, name: str) -> str:
    """Deterministic: the same unit, type and name is the same project (import twice, one project)."""
    return str(deterministic_id("registry", "project", unit, project_type, normalise_name(name)))


def programme_id_for(unit: str, township: str, year: int) -> str:
    """`township` must be the canonical name (campaign.township(name).name), not an alias."""
    return str(deterministic_id("registry", "adaptation", unit, township, str(year)))


def household_id_for(programme_id: str, household_code: str) -> str:
    return str(deterministic_id("registry", "household", programme_id, household_code.strip()))


def household_subject_id(programme_id: str, household_code: str) -> str:
    """The personal-data subject of a household: its key seals name, address and phone."""
    return str(deterministic_id("registry", "household-subject", programme_id, household_code.strip()))


def liaison_subject_id(unit: str, role: str, version: int) -> str:
    return str(deterministic_id("registry", "liaison-subject", unit, str(role), str(version)))


def ledger_entry_id_for(project_id: str, ordinal: int) -> str:
    return str(deterministic_id("registry", "ledger", project_id, str(ordinal)))


# ----- states ---------------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class ProgrammeState:
    programme_id: str
    registration: e.AdaptationProgrammeRegistered | None = None
    households: Mapping[str, e.HouseholdRecord] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def exists(self) -> bool:
        return self.registration is not None


@dataclass(frozen=True, slots=True)
class LiaisonState:
    unit: str
    current: Mapping[str, e.LiaisonRegistered] = field(default_factory=lambda: MappingProxyType({}))

    def version_of(self, role: str) -> int:
        registered = self.current.get(role)
        return registered.version if registered else 0


RegistryState = ProjectState | ProgrammeState | LiaisonState


# ----- evolve ---------------------------------------------------------------------------------------


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


def evolve_programme(state: ProgrammeState, event: Event) -> ProgrammeState:
    if isinstance(event, e.AdaptationProgrammeRegistered):
        return replace(state, registration=event)
    if isinstance(event, e.HouseholdsRegistered):
        households = dict(state.households)
        households.update((h.household_code, h) for h in event.households)
        return replace(state, households=MappingProxyType(households))
    raise TypeError(f"not a programme event: {type(event).__name__}")


def evolve_liaisons(state: LiaisonState, event: Event) -> LiaisonState:
    if isinstance(event, e.LiaisonRegistered):
        current = dict(state.current)
        current[event.role.value] = event
        return replace(state, current=MappingProxyType(current))
    raise TypeError(f"not a liaison event: {type(event).__name__}")


def evolve(state: RegistryState, event: Event) -> RegistryState:
    if isinstance(state, ProjectState):
        return evolve_project(state, event)
    if isinstance(state, ProgrammeState):
        return evolve_programme(state, event)
    return evolve_liaisons(state, event)


def fold(state: RegistryState, events: Iterable[Event]) -> RegistryState:
    for event in events:
        state = evolve(state, event)
    return state


def initial_state(stream_id: str) -> RegistryState:
    """The empty state of a registry stream, by its category."""
    category, _, key = stream_id.partition("-")
    if category == "project":
        return ProjectState(project_id=key)
    if category == "adaptation":
        return ProgrammeState(programme_id=key)
    if category == "liaison":
        return LiaisonState(unit=key)
    raise ValueError(f"not a registry stream: {stream_id}")


# ----- the principal -------------------------------------------------------------------------------


def authorise(actor: Actor, unit: str, allowed: tuple[Role, ...], what: str) -> None:
    """Leader and auditor read only; other roles as allowed; district roles only in their unit."""
    if not actor.role.may_command:
        raise ForbiddenError(f"{actor.role.value} may read but not {what}")
    if actor.role not in allowed:
        raise ForbiddenError(f"{actor.role.value} may not {what}")
    if actor.role.is_district and actor.unit != unit:
        raise ForbiddenError(f"{actor.role.value} of unit {actor.unit} may not {what} in unit {unit}")


# ----- the service rule -------------------------------------------------------------------------------


def effective_status(claimed: OperatingStatus, services: Iterable[str],
                     campaign: Campaign) -> tuple[OperatingStatus, tuple[str, ...]]:
    """The status the registry records for a claim, and why it is not `operating`.

    Fewer than the minimum professional services, or no 助餐, is underperforming whatever was
    claimed; a claim of not operating stands as it is (it is the worse state).
    """
    if claimed == OperatingStatus.NOT_OPERATING:
        return OperatingStatus.NOT_OPERATING, (e.REASON_NOT_OPERATING,)
    failures = campaign.service_rule_failures(services)
    if claimed == OperatingStatus.UNDERPERFORMING:
        return OperatingStatus.UNDERPERFORMING, failures or (e.REASON_ASSESSED_UNDERPERFORMING,)
    if claimed == OperatingStatus.OPERATING:
        if failures:
            return OperatingStatus.UNDERPERFORMING, failures
        return OperatingStatus.OPERATING, ()
    raise ValueError(f"{claimed.value} is not a status an assessment can claim")


# ----- field checks (shared by decide and the importer) -------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field_name: str, reason: str) -> None:
        self.items.append(FieldProblem(field_name, reason))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


def _check_required_text(problems: _Problems, name: str, value: str | None, *,
                         max_length: int = MAX_NAME_LENGTH) -> None:
    if value is None or not value.strip():
        problems.add(name, "is required")
    elif len(value.strip()) > max_length:
        problems.add(name, f"is longer than {max_length} characters")


def _check_year(problems: _Problems, name: str, year: int, campaign: Campaign, today: date) -> None:
    period = campaign.plan_period
    if not period.contains(year):
        problems.add(name, f"{year} is outside the plan period {period.name} "
                           f"({period.first_year}-{period.last_year})")
    elif year > today.year:
        problems.add(name, f"{year} is in the future")


def _check_unit_and_township(problems: _Problems, unit: str, township: str, campaign: Campaign) -> None:
    if not campaign.has_unit(unit):
        problems.add("unit", f"unknown reporting unit {unit!r}")
        return
    known = campaign.township(township)
    if known is None:
        problems.add("township", f"unknown township {township!r}")
    elif known.unit != unit:
        problems.add("township", f"{known.name} belongs to {campaign.unit(known.unit).name}, "
                                 f"not {campaign.unit(unit).name}")


def _check_services(problems: _Problems, name: str, services: Iterable[str], campaign: Campaign) -> None:
    seen: set[str] = set()
    for index, code in enumerate(services):
        if not campaign.has_service(code):
            problems.add(f"{name}[{index}]", f"unknown service {code!r}")
        elif code in seen:
            problems.add(f"{name}[{index}]", f"service {code!r} is listed twice")
        seen.add(code)


def _check_operator(problems: _Problems, operator: e.Operator, name: str = "operator") -> None:
    if operator.kind == OperatorKind.NONE:
        if operator.name or operator.contract_start or operator.contract_end:
            problems.add(name, "an operator of kind 'none' has no name or contract")
        return
    _check_required_text(problems, f"{name}.name", operator.name)
    if operator.contract_start and operator.contract_end and operator.contract_end < operator.contract_start:
        problems.add(f"{name}.contract_end", "is before contract_start")


def _check_not_future(problems: _Problems, name: str, day: date, today: date) -> None:
    if day > today:
        problems.add(name, f"{day} is in the future")


def _tidy_operator(operator: e.Operator) -> e.Operator:
    return operator.model_copy(update={"name": tidy_text(operator.name)})


def project_problems(cmd: c.RegisterProject, campaign: Campaign, today: date) -> list[FieldProblem]:
    """Every field problem of a project registration that needs no stored state."""
    problems = _Problems()
    if not campaign.has_project_type(cmd.project_type):
        problems.add("project_type", f"unknown project type {cmd.project_type!r}")
    elif campaign.project_type(cmd.project_type).kind != ProjectKind.FACILITY:
        problems.add("project_type", f"{cmd.project_type} is registered as an adaptation programme "
                                     "with households, not as a facility")
    _check_required_text(problems, "name", cmd.name)
    _check_unit_and_township(problems, cmd.unit, cmd.township, campaign)
    if cmd.village is not None and len(cmd.village.strip()) > MAX_NAME_LENGTH:
        problems.add("village", f"is longer than {MAX_NAME_LENGTH} characters")
    _check_year(problems, "project_year", cmd.project_year, campaign, today)
    _check_operator(problems, cmd.operator)
    _check_services(problems, "services", cmd.services, campaign)
    if cmd.claimed_status == OperatingStatus.RETIRED:
        problems.add("claimed_status", "a project is registered operating, underperforming or not "
                                       "operating; retire it afterwards with a reason")
    return problems.items


def household_problems(household: c.HouseholdInput, campaign: Campaign, today: date,
                       prefix: str = "", programme_year: int | None = None) -> list[FieldProblem]:
    """Every field problem of one household row that needs no stored state."""
    problems = _Problems()
    code = household.household_code.strip()
    if not _HOUSEHOLD_CODE.fullmatch(code):
        problems.add(f"{prefix}household_code", "use 1-40 letters, digits, '-' or '_'")
    elif _ID_CARD.fullmatch(code) or mobile_problem(code) is None:
        problems.add(f"{prefix}household_code", "looks like an ID card or phone number; codes are "
                                                "shown in clear, so use a neutral code")
    _check_required_text(problems, f"{prefix}village", household.village)
    _check_year(problems, f"{prefix}adaptation_year", household.adaptation_year, campaign, today)
    if programme_year is not None and household.adaptation_year != programme_year:
        problems.add(f"{prefix}adaptation_year",
                     f"{household.adaptation_year} differs from the programme's year {programme_year}")
    if not household.items:
        problems.add(f"{prefix}items", "list at least one installed item")
    seen: set[str] = set()
    for index, item in enumerate(household.items):
        if not campaign.has_adaptation_item(item):
            problems.add(f"{prefix}items[{index}]", f"unknown adaptation item {item!r}")
        elif item in seen:
            problems.add(f"{prefix}items[{index}]", f"item {item!r} is listed twice")
        seen.add(item)
    _check_not_future(problems, f"{prefix}acceptance_date", household.acceptance_date, today)
    if household.acceptance_date.year < household.adaptation_year:
        problems.add(f"{prefix}acceptance_date", "is before the adaptation year")
    _check_required_text(problems, f"{prefix}name", household.name.get_secret_value())
    _check_required_text(problems, f"{prefix}address", household.address.get_secret_value(),
                         max_length=200)
    if household.phone is not None and household.phone.get_secret_value().strip():
        reason = phone_problem(household.phone.get_secret_value())
        if reason:
            problems.add(f"{prefix}phone", reason)
    return problems.items


def _programme_type(campaign: Campaign) -> ProjectType | None:
    return next((t for t in campaign.project_types if t.kind == ProjectKind.PROGRAMME), None)


def programme_problems(cmd: c.RegisterAdaptationProgramme, campaign: Campaign, today: date) -> list[FieldProblem]:
    problems = _Problems()
    if _programme_type(campaign) is None:
        problems.add("project_type", f"campaign {campaign.id} has no home-adaptation project type")
    _check_unit_and_township(problems, cmd.unit, cmd.township, campaign)
    _check_year(problems, "year", cmd.year, campaign, today)
    if cmd.name is not None and len(cmd.name.strip()) > MAX_NAME_LENGTH:
        problems.add("name", f"is longer than {MAX_NAME_LENGTH} characters")
    return problems.items


# ----- projects -----------------------------------------------------------------------------------------


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
    authorise(actor, cmd.unit, _REGISTERING_ROLES, "register projects")
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
        provincial_key=cmd.provincial_key, operator=_tidy_operator(cmd.operator),
        services=tuple(cmd.services), claimed_status=cmd.claimed_status, status=status,
        status_reasons=reasons)

    if state.registration is not None:
        if cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL and _same_registration(state.registration, registered):
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
    authorise(actor, registration.unit, _REGISTERING_ROLES, "change operators")
    problems = _Problems()
    _check_operator(problems, cmd.operator)
    _check_not_future(problems, "changed_on", cmd.changed_on, campaign.local_date(now))
    problems.raise_if_any()
    operator = _tidy_operator(cmd.operator)
    if operator == state.operator:
        return []
    return [e.OperatorChanged(
        project_id=state.project_id, project_type=registration.project_type, unit=registration.unit,
        township=registration.township, previous_operator=state.operator or registration.operator,
        operator=operator, changed_on=cmd.changed_on)]


def decide_change_services(state: ProjectState, cmd: c.ChangeServices, *, actor: Actor,
                           now: datetime, campaign: Campaign) -> list[Event]:
    registration = _require_active(state, "change its services")
    authorise(actor, registration.unit, _REGISTERING_ROLES, "change services")
    problems = _Problems()
    _check_services(problems, "services", cmd.services, campaign)
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
    authorise(actor, registration.unit, _ASSESSING_ROLES, "assess projects")
    today = campaign.local_date(now)
    problems = _Problems()
    if cmd.claimed_status == OperatingStatus.RETIRED:
        problems.add("claimed_status", "retire a project with its own command and a reason")
    _check_required_text(problems, "assessor", cmd.assessor)
    _check_required_text(problems, "evidence", cmd.evidence, max_length=MAX_TEXT_LENGTH)
    _check_not_future(problems, "assessed_on", cmd.assessed_on, today)
    if state.last_assessed_on and cmd.assessed_on < state.last_assessed_on:
        problems.add("assessed_on", f"is before the latest assessment ({state.last_assessed_on})")
    for index, digest in enumerate(cmd.attachment_hashes):
        if not _SHA256_HEX.fullmatch(digest):
            problems.add(f"attachment_hashes[{index}]", "is not a SHA-256 hex digest (64 lowercase hex digits)")
    if cmd.services is not None:
        _check_services(problems, "services", cmd.services, campaign)
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
    authorise(actor, registration.unit, _REGISTERING_ROLES, "retire projects")
    if state.retired:
        raise IllegalTransitionError(f"project {state.project_id} is already retired")
    problems = _Problems()
    _check_required_text(problems, "reason", cmd.reason, max_length=MAX_TEXT_LENGTH)
    _check_not_future(problems, "retired_on", cmd.retired_on, campaign.local_date(now))
    problems.raise_if_any()
    assert state.status is not None
    # A ledger entry stays open: retiring an idle facility is not how it leaves the 台账.
    return [e.ProjectRetired(
        project_id=state.project_id, project_type=registration.project_type, name=registration.name,
        unit=registration.unit, township=registration.township, previous_status=state.status,
        reason_code=cmd.reason_code, reason=cmd.reason.strip(), retired_on=cmd.retired_on)]


# ----- home adaptation ------------------------------------------------------------------------------------


def programme_stream_for(cmd: c.RegisterAdaptationProgramme, campaign: Campaign) -> str:
    township = campaign.township(cmd.township)
    return e.programme_stream(programme_id_for(cmd.unit, township.name if township else cmd.township, cmd.year))


def decide_register_programme(state: ProgrammeState, cmd: c.RegisterAdaptationProgramme, *,
                              actor: Actor, now: datetime, campaign: Campaign) -> list[Event]:
    authorise(actor, cmd.unit, _REGISTERING_ROLES, "register adaptation programmes")
    problems = programme_problems(cmd, campaign, campaign.local_date(now))
    if problems:
        raise ValidationFailed(problems)
    township = campaign.township(cmd.township)
    assert township is not None
    expected_id = programme_id_for(cmd.unit, township.name, cmd.year)
    if state.programme_id != expected_id:
        raise ValueError(f"state of {state.programme_id} given for programme {expected_id}")
    programme_type = _programme_type(campaign)
    assert programme_type is not None  # checked by programme_problems
    registered = e.AdaptationProgrammeRegistered(
        programme_id=state.programme_id, project_type=programme_type.code,
        name=tidy_text(cmd.name) or f"{township.name}{cmd.year}年{programme_type.name}",
        unit=cmd.unit, township=township.name, township_code=township.code, year=cmd.year)
    if state.registration is not None:
        if cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL:
            return []
        raise ValidationFailed([FieldProblem(
            "year", f"a home-adaptation programme of {township.name} for {cmd.year} is already registered")])
    return [registered]


def _sealed_household(programme_id: str, household: c.HouseholdInput,
                      seal: Sealer) -> e.HouseholdRecord:
    code = household.household_code.strip()
    subject = household_subject_id(programme_id, code)
    phone = household.phone.get_secret_value().strip() if household.phone is not None else ""
    return e.HouseholdRecord(
        household_id=household_id_for(programme_id, code), household_code=code,
        village=tidy_text(household.village) or "", adaptation_year=household.adaptation_year,
        items=tuple(household.items), acceptance_date=household.acceptance_date, subject_id=subject,
        name_sealed=seal.seal(subject, "name", household.name.get_secret_value().strip()),
        address_sealed=seal.seal(subject, "address", household.address.get_secret_value().strip()),
        phone_sealed=seal.seal(subject, "phone", normalise_phone(phone)) if phone else None)


def household_subjects(cmd: c.RegisterHouseholds) -> list[str]:
    """Subject ids whose keys the handler fetches (or creates) before deciding."""
    return [household_subject_id(cmd.programme_id, h.household_code) for h in cmd.households]


def decide_register_households(state: ProgrammeState, cmd: c.RegisterHouseholds, *, actor: Actor,
                               now: datetime, campaign: Campaign, seal: Sealer) -> list[Event]:
    if state.registration is None:
        raise NotFoundError(f"adaptation programme {state.programme_id} is not registered")
    programme = state.registration
    authorise(actor, programme.unit, _REGISTERING_ROLES, "register households")
    if not cmd.households:
        raise ValidationFailed([FieldProblem("households", "list at least one household")])
    if len(cmd.households) > MAX_HOUSEHOLDS_PER_COMMAND:
        raise ValidationFailed([FieldProblem(
            "households", f"at most {MAX_HOUSEHOLDS_PER_COMMAND} households per command")])
    today = campaign.local_date(now)
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    for index, household in enumerate(cmd.households):
        prefix = f"households[{index}]."
        problems.extend(household_problems(household, campaign, today, prefix, programme.year))
        code = household.household_code.strip()
        if code in seen:
            problems.append(FieldProblem(f"{prefix}household_code",
                                         f"{code} is also in households[{seen[code]}]"))
        seen.setdefault(code, index)
    if problems:
        raise ValidationFailed(problems)

    new_records: list[e.HouseholdRecord] = []
    for index, household in enumerate(cmd.households):
        try:
            record = _sealed_household(state.programme_id, household, seal)
        except SubjectErasedError:
            problems.append(FieldProblem(f"households[{index}].household_code",
                                         "this household's personal data was erased; register it "
                                         "under a new household code"))
            continue
        existing = state.households.get(record.household_code)
        if existing is None:
            new_records.append(record)
        elif cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL and existing == record:
            continue
        else:
            problems.append(FieldProblem(f"households[{index}].household_code",
                                         f"{record.household_code} is already registered in this programme"))
    if problems:
        raise ValidationFailed(problems)
    if not new_records:
        return []
    return [e.HouseholdsRegistered(programme_id=state.programme_id, unit=programme.unit,
                                   township=programme.township, year=programme.year,
                                   households=tuple(new_records))]


# ----- liaisons --------------------------------------------------------------------------------------------


def liaison_subjects(state: LiaisonState, cmd: c.RegisterLiaison) -> list[str]:
    """The new version's subject, and the current one's (to recognise an identical resubmission)."""
    subjects = [liaison_subject_id(cmd.unit, cmd.role.value, state.version_of(cmd.role.value) + 1)]
    current = state.current.get(cmd.role.value)
    if current is not None:
        subjects.append(current.subject_id)
    return subjects


def _same_liaison(current: e.LiaisonRegistered, cmd: c.RegisterLiaison, mobile: str,
                  office: str | None, seal: Sealer) -> bool:
    if (current.name, current.gender, current.position) != (tidy_text(cmd.name), cmd.gender,
                                                            tidy_text(cmd.position)):
        return False
    try:
        same_mobile = seal.seal(current.subject_id, "mobile", mobile) == current.mobile_sealed
        same_office = (office is None and current.office_phone_sealed is None) or (
            office is not None and seal.seal(current.subject_id, "office_phone", office)
            == current.office_phone_sealed)
    except (SubjectErasedError, LookupError):
        return False
    return same_mobile and same_office


def decide_register_liaison(state: LiaisonState, cmd: c.RegisterLiaison, *, actor: Actor,
                            now: datetime, campaign: Campaign, seal: Sealer) -> list[Event]:
    authorise(actor, cmd.unit, _REGISTERING_ROLES, "register liaisons")
    if state.unit != cmd.unit:
        raise ValueError(f"liaison state of {state.unit} given for unit {cmd.unit}")
    problems = _Problems()
    if not campaign.has_unit(cmd.unit):
        problems.add("unit", f"unknown reporting unit {cmd.unit!r}")
    _check_required_text(problems, "name", cmd.name, max_length=50)
    _check_required_text(problems, "position", cmd.position)
    reason = mobile_problem(cmd.mobile.get_secret_value())
    if reason:
        problems.add("mobile", reason)
    office_raw = cmd.office_phone.get_secret_value().strip() if cmd.office_phone is not None else ""
    if office_raw:
        reason = phone_problem(office_raw)
        if reason:
            problems.add("office_phone", reason)
    problems.raise_if_any()

    mobile = normalise_phone(cmd.mobile.get_secret_value())
    office = normalise_phone(office_raw) if office_raw else None
    role = cmd.role.value
    current = state.current.get(role)
    if current is not None and _same_liaison(current, cmd, mobile, office, seal):
        return []
    version = state.version_of(role) + 1
    subject = liaison_subject_id(cmd.unit, role, version)
    deadlines = campaign.deadlines_of_kind(DeadlineKind.LIAISONS)
    late = bool(deadlines) and campaign.is_late(deadlines[0], now)
    return [e.LiaisonRegistered(
        unit=cmd.unit, role=cmd.role, version=version, name=tidy_text(cmd.name) or "",
        gender=cmd.gender, position=tidy_text(cmd.position) or "", subject_id=subject,
        mobile_sealed=seal.seal(subject, "mobile", mobile), mobile_masked=mask_phone(mobile),
        office_phone_sealed=seal.seal(subject, "office_phone", office) if office else None,
        office_phone_masked=mask_phone(office) if office else None, submitted_late=late)]


# ----- one entry point for handlers -------------------------------------------------------------------------


def stream_for(cmd: c.RegistryCommand, campaign: Campaign) -> str:
    """The stream a command writes to."""
    if isinstance(cmd, c.RegisterProject):
        return e.project_stream(project_id_for(cmd.unit, cmd.project_type, cmd.name))
    if isinstance(cmd, (c.ChangeOperator, c.ChangeServices, c.AssessProject, c.RetireProject)):
        return e.project_stream(cmd.project_id)
    if isinstance(cmd, c.RegisterAdaptationProgramme):
        return programme_stream_for(cmd, campaign)
    if isinstance(cmd, c.RegisterHouseholds):
        return e.programme_stream(cmd.programme_id)
    if isinstance(cmd, c.RegisterLiaison):
        return e.liaison_stream(cmd.unit)
    raise TypeError(f"not a registry command: {type(cmd).__name__}")


def subjects_for(state: RegistryState, cmd: c.RegistryCommand) -> list[str]:
    """Personal-data subjects whose keys `decide` will need (empty for commands without any)."""
    if isinstance(cmd, c.RegisterHouseholds):
        return household_subjects(cmd)
    if isinstance(cmd, c.RegisterLiaison) and isinstance(state, LiaisonState):
        return liaison_subjects(state, cmd)
    return []


def decide(state: RegistryState, cmd: c.RegistryCommand, *, actor: Actor, now: datetime,
           campaign: Campaign, seal: Sealer | None = None) -> list[Event]:
    """Dispatch a command to its decide function (the handler's one call)."""
    if isinstance(state, ProjectState):
        if isinstance(cmd, c.RegisterProject):
            return decide_register_project(state, cmd, actor=actor, now=now, campaign=campaign)
        if isinstance(cmd, c.ChangeOperator):
            return decide_change_operator(state, cmd, actor=actor, now=now, campaign=campaign)
        if isinstance(cmd, c.ChangeServices):
            return decide_change_services(state, cmd, actor=actor, now=now, campaign=campaign)
        if isinstance(cmd, c.AssessProject):
            return decide_assess_project(state, cmd, actor=actor, now=now, campaign=campaign)
        if isinstance(cmd, c.RetireProject):
            return decide_retire_project(state, cmd, actor=actor, now=now, campaign=campaign)
    if isinstance(state, ProgrammeState):
        if isinstance(cmd, c.RegisterAdaptationProgramme):
            return decide_register_programme(state, cmd, actor=actor, now=now, campaign=campaign)
        if isinstance(cmd, c.RegisterHouseholds):
            if seal is None:
                raise ValueError("registering households needs a sealer for personal data")
            return decide_register_households(state, cmd, actor=actor, now=now, campaign=campaign, seal=seal)
    if isinstance(state, LiaisonState) and isinstance(cmd, c.RegisterLiaison):
        if seal is None:
            raise ValueError("registering a liaison needs a sealer for personal data")
        return decide_register_liaison(state, cmd, actor=actor, now=now, campaign=campaign, seal=seal)
    raise TypeError(f"{type(cmd).__name__} does not apply to {type(state).__name__}")
