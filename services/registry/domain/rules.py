"""Registry rules shared by every aggregate: ids, the principal, the service rule, field checks.

Pure: no I/O, no clock. The field checks are shared by the decide functions and the importer, so
a spreadsheet row and a form are refused for the same reasons in the same words.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date

from services.registry import commands as c
from services.registry import events as e
from services.registry.events import OperatingStatus, OperatorKind
from shared.campaign import Campaign, ProjectKind, ProjectType
from shared.errors import FieldProblem, ForbiddenError, ValidationFailed
from shared.messages import Actor, Role, deterministic_id
from shared.personal_data import mobile_problem, phone_problem

MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 4000
MAX_HOUSEHOLDS_PER_COMMAND = 5000
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
HOUSEHOLD_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,39}")
# A household code must not be a person's ID card number or phone: codes travel in clear.
ID_CARD = re.compile(r"\d{17}[\dXx]")

REGISTERING_ROLES = (Role.CITY_ADMIN, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)
ASSESSING_ROLES = (Role.CITY_ADMIN, Role.INSPECTOR, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)


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


class Problems:
    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field_name: str, reason: str) -> None:
        self.items.append(FieldProblem(field_name, reason))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


def check_required_text(problems: Problems, name: str, value: str | None, *,
                         max_length: int = MAX_NAME_LENGTH) -> None:
    if value is None or not value.strip():
        problems.add(name, "is required")
    elif len(value.strip()) > max_length:
        problems.add(name, f"is longer than {max_length} characters")


def check_year(problems: Problems, name: str, year: int, campaign: Campaign, today: date) -> None:
    period = campaign.plan_period
    if not period.contains(year):
        problems.add(name, f"{year} is outside the plan period {period.name} "
                           f"({period.first_year}-{period.last_year})")
    elif year > today.year:
        problems.add(name, f"{year} is in the future")


def check_unit_and_township(problems: Problems, unit: str, township: str, campaign: Campaign) -> None:
    if not campaign.has_unit(unit):
        problems.add("unit", f"unknown reporting unit {unit!r}")
        return
    known = campaign.township(township)
    if known is None:
        problems.add("township", f"unknown township {township!r}")
    elif known.unit != unit:
        problems.add("township", f"{known.name} belongs to {campaign.unit(known.unit).name}, "
                                 f"not {campaign.unit(unit).name}")


def check_services(problems: Problems, name: str, services: Iterable[str], campaign: Campaign) -> None:
    seen: set[str] = set()
    for index, code in enumerate(services):
        if not campaign.has_service(code):
            problems.add(f"{name}[{index}]", f"unknown service {code!r}")
        elif code in seen:
            problems.add(f"{name}[{index}]", f"service {code!r} is listed twice")
        seen.add(code)


def check_operator(problems: Problems, operator: e.Operator, name: str = "operator") -> None:
    if operator.kind == OperatorKind.NONE:
        if operator.name or operator.contract_start or operator.contract_end:
            problems.add(name, "an operator of kind 'none' has no name or contract")
        return
    check_required_text(problems, f"{name}.name", operator.name)
    if operator.contract_start and operator.contract_end and operator.contract_end < operator.contract_start:
        problems.add(f"{name}.contract_end", "is before contract_start")


def check_not_future(problems: Problems, name: str, day: date, today: date) -> None:
    if day > today:
        problems.add(name, f"{day} is in the future")


def tidy_operator(operator: e.Operator) -> e.Operator:
    return operator.model_copy(update={"name": tidy_text(operator.name)})


def project_problems(cmd: c.RegisterProject, campaign: Campaign, today: date) -> list[FieldProblem]:
    """Every field problem of a project registration that needs no stored state."""
    problems = Problems()
    if not campaign.has_project_type(cmd.project_type):
        problems.add("project_type", f"unknown project type {cmd.project_type!r}")
    elif campaign.project_type(cmd.project_type).kind != ProjectKind.FACILITY:
        problems.add("project_type", f"{cmd.project_type} is registered as an adaptation programme "
                                     "with households, not as a facility")
    check_required_text(problems, "name", cmd.name)
    check_unit_and_township(problems, cmd.unit, cmd.township, campaign)
    if cmd.village is not None and len(cmd.village.strip()) > MAX_NAME_LENGTH:
        problems.add("village", f"is longer than {MAX_NAME_LENGTH} characters")
    check_year(problems, "project_year", cmd.project_year, campaign, today)
    check_operator(problems, cmd.operator)
    check_services(problems, "services", cmd.services, campaign)
    if cmd.claimed_status == OperatingStatus.RETIRED:
        problems.add("claimed_status", "a project is registered operating, underperforming or not "
                                       "operating; retire it afterwards with a reason")
    return problems.items


def household_problems(household: c.HouseholdInput, campaign: Campaign, today: date,
                       prefix: str = "", programme_year: int | None = None) -> list[FieldProblem]:
    """Every field problem of one household row that needs no stored state."""
    problems = Problems()
    code = household.household_code.strip()
    if not HOUSEHOLD_CODE.fullmatch(code):
        problems.add(f"{prefix}household_code", "use 1-40 letters, digits, '-' or '_'")
    elif ID_CARD.fullmatch(code) or mobile_problem(code) is None:
        problems.add(f"{prefix}household_code", "looks like an ID card or phone number; codes are "
                                                "shown in clear, so use a neutral code")
    check_required_text(problems, f"{prefix}village", household.village)
    check_year(problems, f"{prefix}adaptation_year", household.adaptation_year, campaign, today)
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
    check_not_future(problems, f"{prefix}acceptance_date", household.acceptance_date, today)
    if household.acceptance_date.year < household.adaptation_year:
        problems.add(f"{prefix}acceptance_date", "is before the adaptation year")
    check_required_text(problems, f"{prefix}name", household.name.get_secret_value())
    check_required_text(problems, f"{prefix}address", household.address.get_secret_value(),
                         max_length=200)
    if household.phone is not None and household.phone.get_secret_value().strip():
        reason = phone_problem(household.phone.get_secret_value())
        if reason:
            problems.add(f"{prefix}phone", reason)
    return problems.items


def programme_project_type(campaign: Campaign) -> ProjectType | None:
    return next((t for t in campaign.project_types if t.kind == ProjectKind.PROGRAMME), None)


def programme_problems(cmd: c.RegisterAdaptationProgramme, campaign: Campaign,
                       today: date) -> list[FieldProblem]:
    problems = Problems()
    if programme_project_type(campaign) is None:
        problems.add("project_type", f"campaign {campaign.id} has no home-adaptation project type")
    check_unit_and_township(problems, cmd.unit, cmd.township, campaign)
    check_year(problems, "year", cmd.year, campaign, today)
    if cmd.name is not None and len(cmd.name.strip()) > MAX_NAME_LENGTH:
        problems.add("name", f"is longer than {MAX_NAME_LENGTH} characters")
    return problems.items
