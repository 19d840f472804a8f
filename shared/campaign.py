"""The campaign file: units, places, project types, the service rule, phases, deadlines, calendar.

Every service reads the same file, so a rule the notice leaves open (which townships a zone handles,
how many points a late report costs, whether May 25 is a due date) is data, not code, and another
city or year runs its own look-back with its own file. The Ezhou 2024 campaign is the packaged
default; `LOOKBACK_CAMPAIGN_FILE` points elsewhere.

`load_campaign()` refuses an invalid file with every problem named by field path and reason.
"""
from __future__ import annotations

import os
import tomllib
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.canonical import canonical_hash
from shared.errors import LookbackError

CAMPAIGN_FILE_ENV = "LOOKBACK_CAMPAIGN_FILE"
DEFAULT_CAMPAIGN_FILE = Path(__file__).with_name("campaigns") / "ezhou-2024.toml"

_CODE_PATTERN = r"^[a-z][a-z0-9_]*$"


class CampaignConfigError(LookbackError):
    """The campaign file is unreadable or invalid. `problems` lists (field path, reason) pairs."""

    def __init__(self, source: str, problems: Iterable[tuple[str, str]]) -> None:
        self.source = source
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        lines = "\n".join(f"  {field or '(file)'}: {reason}" for field, reason in self.problems)
        super().__init__(f"invalid campaign file {source}:\n{lines}")


class SamplingRule(StrEnum):
    R1 = "R1"  # full coverage of provincial key projects
    R2 = "R2"  # a share per (unit, type)
    R3 = "R3"  # townships, then households within them


class ProjectKind(StrEnum):
    FACILITY = "facility"
    PROGRAMME = "programme"  # home adaptation: a programme with household records


class DeadlineKind(StrEnum):
    LIAISONS = "liaisons"
    WORK_PLAN = "work_plan"
    MONTHLY_PROBLEM_LIST = "monthly_problem_list"
    RECTIFICATION_COMPLETE = "rectification_complete"
    SELF_INSPECTION_REPORT = "self_inspection_report"
    TYPICAL_CASE = "typical_case"


class DeductionTrigger(StrEnum):
    LATE_SUBMISSION = "late_submission"            # a report submitted after its due time
    MISSING_SUBMISSION = "missing_submission"      # nothing submitted for a deadline at all
    ITEM_OPEN_AT_DEADLINE = "item_open_at_deadline"  # a problem item still open at a deadline
    ITEM_REOPENED = "item_reopened"                # a closed item found again (反弹)
    ITEM_OVERDUE = "item_overdue"                  # an item past its own 整改限期


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _normalise_name(name: str) -> str:
    """Place names typed by people: full-width brackets and stray spaces must still match."""
    return "".join(unicodedata.normalize("NFKC", name).split())


class CampaignInfo(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    notice_number: str = Field(min_length=1)
    issuer: str = Field(min_length=1)
    issued_on: date
    timezone: str
    starts_on: date
    ends_on: date

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class PlanPeriod(_Model):
    name: str
    first_year: int = Field(ge=1949, le=2200)
    last_year: int = Field(ge=1949, le=2200)

    def contains(self, year: int) -> bool:
        return self.first_year <= year <= self.last_year


class ReportingUnit(_Model):
    code: str = Field(pattern=_CODE_PATTERN)
    name: str = Field(min_length=1)
    area_name: str = Field(min_length=1)


class Township(_Model):
    name: str = Field(min_length=1)
    unit: str
    code: str | None = Field(default=None, pattern=r"^\d{9}$")
    aliases: tuple[str, ...] = ()


class ProjectType(_Model):
    code: str = Field(pattern=_CODE_PATTERN)
    name: str = Field(min_length=1)
    kind: ProjectKind
    sampling_rule: SamplingRule


class ServiceRule(_Model):
    min_services: int = Field(ge=1)
    required_services: tuple[str, ...]


class ElderlyService(_Model):
    code: str = Field(pattern=_CODE_PATTERN)
    name: str = Field(min_length=1)
    # Only professional services count toward `min_services`.
    professional: bool = True


class AdaptationItem(_Model):
    code: str = Field(pattern=_CODE_PATTERN)
    name: str = Field(min_length=1)
    basic: bool


class Phase(_Model):
    code: str = Field(pattern=_CODE_PATTERN)
    name: str = Field(min_length=1)
    starts_on: date
    ends_on: date

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


class Deadline(_Model):
    code: str = Field(pattern=_CODE_PATTERN)
    kind: DeadlineKind
    name: str = Field(min_length=1)
    due_on: date
    due_time: time = time(23, 59, 59)
    phase: str
    period: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}$")
    min_count: int = Field(default=1, ge=1)
    # Overrides [reminders].offsets_working_days for this deadline only.
    reminder_offsets_working_days: tuple[int, ...] | None = None

    @field_validator("due_time")
    @classmethod
    def _naive_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("due_time is local to the campaign time zone; give no offset")
        return value


class RectificationSettings(_Model):
    immediate_days: int = Field(ge=0, le=365)
    immediate_label: str = "立行立改"


class ReminderSettings(_Model):
    offsets_working_days: tuple[int, ...]
    item_offsets_working_days: tuple[int, ...]
    overdue_every_days: int = Field(ge=1)
    escalate_after_overdue_days: int = Field(ge=0)
    send_at: time = time(9, 0)
    # Notices of a scheduled inspection visit, in working days before the visit day.
    visit_offsets_working_days: tuple[int, ...] = (1,)

    @field_validator("offsets_working_days", "item_offsets_working_days",
                     "visit_offsets_working_days")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(offset < 0 for offset in value):
            raise ValueError("offsets count working days before the due date and cannot be negative")
        return tuple(sorted(set(value), reverse=True))


class HolidayCalendar(_Model):
    holidays: tuple[date, ...] = ()
    make_up_working_days: tuple[date, ...] = ()


class SamplingSettings(_Model):
    inspection_starts_on: date
    inspection_ends_on: date
    r2_numerator: int = Field(ge=1)
    r2_denominator: int = Field(ge=1)
    r3_townships_to_draw: int = Field(ge=1)
    r3_min_households_per_township: int = Field(ge=1)
    r3_households_to_draw: int = Field(ge=1)


class SupervisionSettings(_Model):
    yellow_within_working_days: int = Field(ge=0)


class DeductionRule(_Model):
    id: str = Field(pattern=_CODE_PATTERN)
    trigger: DeductionTrigger
    points: str
    description: str = Field(min_length=1)
    deadline: str | None = None     # a deadline code; none = every deadline the trigger applies to
    max_points: str | None = None   # cap per unit, none = no cap

    @field_validator("points", "max_points")
    @classmethod
    def _positive_decimal(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a decimal number (write it as a string, e.g. \"0.5\")") from exc
        if not number.is_finite() or number <= 0:
            raise ValueError("must be a positive decimal")
        return value

    @property
    def points_decimal(self) -> Decimal:
        return Decimal(self.points)

    @property
    def max_points_decimal(self) -> Decimal | None:
        return None if self.max_points is None else Decimal(self.max_points)


class Campaign(_Model):
    """One look-back campaign, validated; helpers answer the questions every service asks."""

    campaign: CampaignInfo
    plan_period: PlanPeriod
    units: tuple[ReportingUnit, ...] = Field(min_length=1)
    townships: tuple[Township, ...] = Field(min_length=1)
    project_types: tuple[ProjectType, ...] = Field(min_length=1)
    service_rule: ServiceRule
    services: tuple[ElderlyService, ...] = Field(min_length=1)
    adaptation_items: tuple[AdaptationItem, ...] = ()
    phases: tuple[Phase, ...] = Field(min_length=1)
    deadlines: tuple[Deadline, ...] = ()
    rectification: RectificationSettings
    reminders: ReminderSettings
    calendar: HolidayCalendar = HolidayCalendar()
    sampling: SamplingSettings
    supervision: SupervisionSettings
    deduction_rules: tuple[DeductionRule, ...] = ()

    @model_validator(mode="after")
    def _cross_references(self) -> "Campaign":
        problems = list(_cross_reference_problems(self))
        if problems:
            # Not a ValueError on purpose: pydantic would flatten it to one message without paths.
            raise CampaignConfigError("(model)", problems)
        return self

    # ----- identity -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.campaign.id

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.campaign.timezone)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the whole configuration, to record which rules applied."""
        return canonical_hash(self.model_dump(mode="json")).hex()

    # ----- units and places -----------------------------------------------------------------------

    @cached_property
    def _units_by_code(self) -> dict[str, ReportingUnit]:
        return {unit.code: unit for unit in self.units}

    @cached_property
    def _townships_by_name(self) -> dict[str, Township]:
        index: dict[str, Township] = {}
        for township in self.townships:
            for name in (township.name, *township.aliases):
                index[_normalise_name(name)] = township
        return index

    @property
    def unit_codes(self) -> tuple[str, ...]:
        return tuple(unit.code for unit in self.units)

    def unit(self, code: str) -> ReportingUnit:
        """The unit with this code; KeyError if there is none."""
        return self._units_by_code[code]

    def has_unit(self, code: str) -> bool:
        return code in self._units_by_code

    def unit_by_name(self, text: str) -> ReportingUnit | None:
        """A unit by code, full name or area name, as people type it in a spreadsheet."""
        wanted = _normalise_name(text)
        for unit in self.units:
            if wanted in (unit.code, _normalise_name(unit.name), _normalise_name(unit.area_name)):
                return unit
        return None

    def township(self, name: str) -> Township | None:
        """The township by its name or an alias (full-width brackets and spaces ignored)."""
        return self._townships_by_name.get(_normalise_name(name))

    def unit_of_township(self, name: str) -> str | None:
        """The code of the unit a township belongs to, or None for an unknown township."""
        township = self.township(name)
        return township.unit if township else None

    def townships_of(self, unit: str) -> tuple[Township, ...]:
        return tuple(t for t in self.townships if t.unit == unit)

    def township_belongs_to(self, name: str, unit: str) -> bool:
        return self.unit_of_township(name) == unit

    # ----- project types and services -------------------------------------------------------------

    @cached_property
    def _types_by_code(self) -> dict[str, ProjectType]:
        return {t.code: t for t in self.project_types}

    def project_type(self, code: str) -> ProjectType:
        """The project type with this code; KeyError if there is none."""
        return self._types_by_code[code]

    def has_project_type(self, code: str) -> bool:
        return code in self._types_by_code

    def project_type_by_name(self, text: str) -> ProjectType | None:
        wanted = _normalise_name(text)
        for project_type in self.project_types:
            if wanted in (project_type.code, _normalise_name(project_type.name)):
                return project_type
        return None

    def project_types_with_rule(self, rule: SamplingRule | str) -> tuple[ProjectType, ...]:
        return tuple(t for t in self.project_types if t.sampling_rule == rule)

    @cached_property
    def _services_by_code(self) -> dict[str, ElderlyService]:
        return {s.code: s for s in self.services}

    def service(self, code: str) -> ElderlyService:
        return self._services_by_code[code]

    def has_service(self, code: str) -> bool:
        return code in self._services_by_code

    def service_by_name(self, text: str) -> ElderlyService | None:
        wanted = _normalise_name(text)
        for service in self.services:
            if wanted in (service.code, _normalise_name(service.name)):
                return service
        return None

    def service_rule_failures(self, services: Iterable[str]) -> tuple[str, ...]:
        """Why a set of services breaks the rule, as reason codes; empty when it meets it.

        `fewer_than_min_services` when fewer than `min_services` professional services, and
        `no_<code>` for each required service missing (`no_meal_assistance`).
        """
        provided = set(services)
        professional = {code for code in provided
                        if code in self._services_by_code and self._services_by_code[code].professional}
        reasons: list[str] = []
        if len(professional) < self.service_rule.min_services:
            reasons.append("fewer_than_min_services")
        for required in self.service_rule.required_services:
            if required not in provided:
                reasons.append(f"no_{required}")
        return tuple(reasons)

    def meets_service_rule(self, services: Iterable[str]) -> bool:
        return not self.service_rule_failures(services)

    @cached_property
    def _adaptation_items_by_code(self) -> dict[str, AdaptationItem]:
        return {item.code: item for item in self.adaptation_items}

    def has_adaptation_item(self, code: str) -> bool:
        return code in self._adaptation_items_by_code

    def adaptation_item_by_name(self, text: str) -> AdaptationItem | None:
        wanted = _normalise_name(text)
        for item in self.adaptation_items:
            if wanted in (item.code, _normalise_name(item.name)):
                return item
        return None

    # ----- plan period ----------------------------------------------------------------------------

    def year_in_plan_period(self, year: int) -> bool:
        return self.plan_period.contains(year)

    # ----- phases and deadlines -------------------------------------------------------------------

    def phase(self, code: str) -> Phase:
        for phase in self.phases:
            if phase.code == code:
                return phase
        raise KeyError(code)

    def phase_on(self, day: date) -> Phase | None:
        """The phase running on a local date, or None outside the campaign."""
        return next((phase for phase in self.phases if phase.contains(day)), None)

    def deadline(self, code: str) -> Deadline:
        for deadline in self.deadlines:
            if deadline.code == code:
                return deadline
        raise KeyError(code)

    def deadlines_of_kind(self, kind: DeadlineKind | str) -> tuple[Deadline, ...]:
        return tuple(d for d in self.deadlines if d.kind == kind)

    def local_datetime(self, day: date, at: time) -> datetime:
        """A local wall-clock moment as an aware datetime in the campaign's time zone."""
        return datetime.combine(day, at, tzinfo=self.tz)

    def due_at(self, deadline: Deadline | str) -> datetime:
        """When a deadline falls due, aware, in the campaign's time zone (e.g. 2024-03-25 23:59:59+08:00)."""
        if isinstance(deadline, str):
            deadline = self.deadline(deadline)
        return self.local_datetime(deadline.due_on, deadline.due_time)

    def is_late(self, deadline: Deadline | str, submitted_at: datetime) -> bool:
        """Late means after the due moment; the due second itself still counts as on time."""
        if submitted_at.tzinfo is None:
            raise ValueError("submitted_at must be timezone-aware")
        return submitted_at > self.due_at(deadline)

    def local_date(self, moment: datetime) -> date:
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        return moment.astimezone(self.tz).date()

    def immediate_due_date(self, registered_on: date) -> date:
        """整改限期 for a 立行立改 item: `immediate_days` calendar days after registration."""
        return registered_on + timedelta(days=self.rectification.immediate_days)

    # ----- working days ---------------------------------------------------------------------------

    @cached_property
    def _holidays(self) -> frozenset[date]:
        return frozenset(self.calendar.holidays)

    @cached_property
    def _make_up_days(self) -> frozenset[date]:
        return frozenset(self.calendar.make_up_working_days)

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday, except holidays; plus the weekend days declared make-up working days."""
        if day in self._make_up_days:
            return True
        if day in self._holidays:
            return False
        return day.weekday() < 5

    def working_day_on_or_before(self, day: date) -> date:
        while not self.is_working_day(day):
            day -= timedelta(days=1)
        return day

    def working_day_on_or_after(self, day: date) -> date:
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def working_days_before(self, day: date, count: int) -> date:
        """The working day `count` working days before `day` (T-n); T-0 is `day` or, when `day`
        is not a working day, the last working day before it."""
        current = self.working_day_on_or_before(day)
        for _ in range(count):
            current = self.working_day_on_or_before(current - timedelta(days=1))
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: 0 when end <= start."""
        days = 0
        current = start + timedelta(days=1)
        while current <= end:
            days += self.is_working_day(current)
            current += timedelta(days=1)
        return days

    def reminder_dates(self, due_on: date, offsets: Iterable[int] | None = None, *,
                       not_before: date | None = None) -> tuple[date, ...]:
        """Local dates to remind on before a due date, earliest first, never on a non-working day.

        Holidays move a reminder to the previous working day; they never move the deadline.
        Dates before `not_before` (e.g. before the notice was issued) are dropped.
        """
        chosen = self.reminders.offsets_working_days if offsets is None else tuple(offsets)
        dates = {self.working_days_before(due_on, n) for n in chosen}
        return tuple(sorted(d for d in dates if not_before is None or d >= not_before))

    def deadline_reminder_dates(self, deadline: Deadline | str) -> tuple[date, ...]:
        """Reminder dates of a campaign deadline; none before the campaign starts."""
        if isinstance(deadline, str):
            deadline = self.deadline(deadline)
        return self.reminder_dates(deadline.due_on, deadline.reminder_offsets_working_days,
                                   not_before=self.campaign.starts_on)

    # ----- sampling and supervision ---------------------------------------------------------------

    def r2_sample_size(self, frame_size: int) -> int:
        """ceil(N * numerator / denominator) in integers: ⌈5/2⌉ = 3. Never round() (round(2.5) == 2)."""
        if frame_size < 0:
            raise ValueError("frame size cannot be negative")
        numerator, denominator = self.sampling.r2_numerator, self.sampling.r2_denominator
        return (frame_size * numerator + denominator - 1) // denominator

    def deduction_rule(self, rule_id: str) -> DeductionRule:
        for rule in self.deduction_rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


def _cross_reference_problems(c: Campaign) -> Iterable[tuple[str, str]]:
    info = c.campaign
    if info.ends_on < info.starts_on:
        yield "campaign.ends_on", f"{info.ends_on} is before starts_on {info.starts_on}"
    if c.plan_period.last_year < c.plan_period.first_year:
        yield "plan_period.last_year", "is before first_year"

    for code in _duplicates(u.code for u in c.units):
        yield "units", f"unit code {code!r} appears more than once"
    unit_codes = {u.code for u in c.units}

    names_seen: dict[str, int] = {}
    for i, township in enumerate(c.townships):
        if township.unit not in unit_codes:
            yield f"townships[{i}].unit", f"unknown unit {township.unit!r} (known: {', '.join(sorted(unit_codes))})"
        for name in (township.name, *township.aliases):
            key = _normalise_name(name)
            if key in names_seen:
                yield (f"townships[{i}].name",
                       f"{name!r} is already used by townships[{names_seen[key]}]; "
                       "a township belongs to exactly one unit")
            names_seen.setdefault(key, i)
    for code in _duplicates(t.code for t in c.townships if t.code):
        yield "townships", f"statistics code {code} appears more than once"

    for code in _duplicates(t.code for t in c.project_types):
        yield "project_types", f"project type {code!r} appears more than once"

    service_codes = [s.code for s in c.services]
    for code in _duplicates(service_codes):
        yield "services", f"service {code!r} appears more than once"
    for i, required in enumerate(c.service_rule.required_services):
        if required not in service_codes:
            yield f"service_rule.required_services[{i}]", f"unknown service {required!r}"
    professional = sum(1 for s in c.services if s.professional)
    if c.service_rule.min_services > professional:
        yield ("service_rule.min_services",
               f"{c.service_rule.min_services} exceeds the {professional} professional services listed")
    for code in _duplicates(item.code for item in c.adaptation_items):
        yield "adaptation_items", f"item {code!r} appears more than once"

    phase_codes = [p.code for p in c.phases]
    for code in _duplicates(phase_codes):
        yield "phases", f"phase {code!r} appears more than once"
    previous: Phase | None = None
    for i, phase in enumerate(c.phases):
        if phase.ends_on < phase.starts_on:
            yield f"phases[{i}].ends_on", f"{phase.ends_on} is before starts_on {phase.starts_on}"
        if phase.starts_on < info.starts_on or phase.ends_on > info.ends_on:
            yield f"phases[{i}]", f"{phase.starts_on}..{phase.ends_on} is outside the campaign {info.starts_on}..{info.ends_on}"
        if previous is not None and phase.starts_on <= previous.ends_on:
            yield f"phases[{i}].starts_on", f"overlaps phase {previous.code!r}; phases run in order"
        previous = phase

    phases = {p.code: p for p in c.phases}
    for code in _duplicates(d.code for d in c.deadlines):
        yield "deadlines", f"deadline {code!r} appears more than once"
    for i, deadline in enumerate(c.deadlines):
        phase = phases.get(deadline.phase)
        if phase is None:
            yield f"deadlines[{i}].phase", f"unknown phase {deadline.phase!r}"
        elif not phase.contains(deadline.due_on):
            yield (f"deadlines[{i}].due_on",
                   f"{deadline.due_on} is outside its phase {phase.code!r} ({phase.starts_on}..{phase.ends_on})")
        if deadline.kind == DeadlineKind.MONTHLY_PROBLEM_LIST and deadline.period is None:
            yield f"deadlines[{i}].period", "a monthly list names its month, e.g. \"2024-03\""
        if deadline.reminder_offsets_working_days and any(o < 0 for o in deadline.reminder_offsets_working_days):
            yield f"deadlines[{i}].reminder_offsets_working_days", "offsets cannot be negative"

    overlap = set(c.calendar.holidays) & set(c.calendar.make_up_working_days)
    for day in sorted(overlap):
        yield "calendar.make_up_working_days", f"{day} is also listed as a holiday"

    sampling = c.sampling
    if sampling.inspection_ends_on < sampling.inspection_starts_on:
        yield "sampling.inspection_ends_on", "is before inspection_starts_on"
    if not (info.starts_on <= sampling.inspection_starts_on <= info.ends_on):
        yield "sampling.inspection_starts_on", f"{sampling.inspection_starts_on} is outside the campaign"
    if sampling.inspection_ends_on > info.ends_on:
        yield "sampling.inspection_ends_on", f"{sampling.inspection_ends_on} is after the campaign ends"
    if sampling.r2_numerator > sampling.r2_denominator:
        yield "sampling.r2_numerator", "the R2 share cannot exceed 1"

    deadline_codes = {d.code for d in c.deadlines}
    for code in _duplicates(r.id for r in c.deduction_rules):
        yield "deduction_rules", f"rule id {code!r} appears more than once"
    for i, rule in enumerate(c.deduction_rules):
        if rule.deadline is not None and rule.deadline not in deadline_codes:
            yield f"deduction_rules[{i}].deadline", f"unknown deadline {rule.deadline!r}"
        if rule.trigger in (DeductionTrigger.ITEM_OPEN_AT_DEADLINE, DeductionTrigger.MISSING_SUBMISSION) \
                and rule.deadline is None:
            yield f"deduction_rules[{i}].deadline", f"trigger {rule.trigger.value!r} needs a deadline"


def _pydantic_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown field (a typo?)"
        elif item["type"] == "missing":
            reason = "required field is missing"
        problems.append((path, reason))
    return problems


def parse_campaign(data: Mapping[str, Any], *, source: str = "<data>") -> Campaign:
    """Validate already-parsed campaign data; CampaignConfigError lists every problem."""
    try:
        return Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignConfigError(source, _pydantic_problems(exc)) from None
    except CampaignConfigError as exc:
        raise CampaignConfigError(source, exc.problems) from None


def load_campaign(path: str | os.PathLike[str] | None = None) -> Campaign:
    """Read and validate a campaign TOML file.

    `path`, else the file named by LOOKBACK_CAMPAIGN_FILE, else the packaged Ezhou 2024 default.
    """
    if path is None:
        path = os.environ.get(CAMPAIGN_FILE_ENV) or DEFAULT_CAMPAIGN_FILE
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise CampaignConfigError(source, [("", "file not found")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignConfigError(source, [("", f"not valid TOML: {exc}")]) from None
    return parse_campaign(data, source=source)
