"""What every rectification aggregate shares: the campaign's rules as the domain takes them, the
project reference, the named errors, stream and report ids, and the principal checks. Pure.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.rectification.events import ReportKind
from shared.errors import DomainError, ForbiddenError
from shared.messages import Actor, Role
from shared.times import written_date, written_datetime


class InvalidCommandError(DomainError):
    """The command is well-formed but makes no sense here (a deadline in the past, ...)."""

    code = "invalid_command"


class FourEyesError(DomainError):
    """The same person may not both ask for and grant something (谁整改谁申请, 谁验收谁负责).

    A conflict with the state (409), not a missing authority (403): the actor holds the role the
    rule needs; it is the item's own history (they asked for it themselves) that forbids it."""

    code = "four_eyes"


# ------------------------------------------------------------------------------------------
# The campaign's rules


class SubmissionKind(StrEnum):
    """What a unit submits by a campaign deadline and this service judges (DOMAIN.md §4, §7).
    The report kinds are this service's own reports; 附件1 (liaisons) is filed with the registry,
    whose LiaisonRegistered events tell this service when."""

    LIAISONS = "liaisons"
    WORK_PLAN = "work_plan"
    MONTHLY_LIST = "monthly_list"
    SELF_INSPECTION_REPORT = "self_inspection_report"
    TYPICAL_CASE = "typical_case"


@dataclass(frozen=True, slots=True)
class Submission:
    """One campaign deadline a unit must submit something by: the deadline's code and Chinese
    name (from the campaign file), its day, the month of a monthly list, and how many are due
    (typical cases: `min_count`)."""

    code: str
    kind: SubmissionKind
    name: str
    due_on: date
    period: str | None = None
    min_count: int = 1


@dataclass(frozen=True, slots=True)
class RectificationRules:
    """The campaign's dates and settings as the rectification rules need them. Built from the
    campaign file only (config.rectification_rules): no value here has a default of its own."""

    immediate_days: int                                  # 立行立改: due N days after registration
    timezone: str
    due_time: time                                       # "25日前" = on or before the 25th, at this time
    monthly_list_months: tuple[str, ...]
    monthly_list_due_dates: tuple[tuple[str, date], ...]
    self_inspection_report_due: date
    typical_case_due: date
    # A ledger item registered on or before this date is due on it; one registered later is 立行立改.
    ledger_item_deadline: date
    work_plan_due: date | None                           # None: the campaign asks for no work plan
    # Every deadline of the campaign a unit submits something by, in the file's order.
    submissions: tuple[Submission, ...]

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
        raise ValueError(f"the campaign names no monthly list for {month}")


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """What this service learned about a project from registry events (its own read model)."""

    project_id: str
    unit: str
    township: str
    name: str
    year: int


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


def work_plan_report_id(unit: str) -> str:
    return f"{unit}-{ReportKind.WORK_PLAN}"


def typical_case_report_id(unit: str, case_id: uuid.UUID) -> str:
    return f"{unit}-{ReportKind.TYPICAL_CASE}-{case_id}"


# ------------------------------------------------------------------------------------------
# The principal

ROLE_LABELS = {
    Role.CITY_ADMIN: "市民政局管理员",
    Role.INSPECTOR: "市检查组人员",
    Role.DISTRICT_REPORTER: "填报人",
    Role.DISTRICT_REVIEWER: "审核人",
    Role.LEADER: "领导",
    Role.AUDITOR: "审计监督人员",
}


def require_commander(actor: Actor) -> None:
    if not actor.role.may_command:
        raise ForbiddenError(f"role {actor.role} sends no commands",
                             zh=f"{ROLE_LABELS[actor.role]}只能查看，不能办理。")


def require_own_unit(actor: Actor, unit: str) -> None:
    if actor.role.is_district and actor.unit != unit:
        raise ForbiddenError(f"a district role acts only on its own unit ({actor.unit}), not {unit}",
                             zh="区级账号只能办理本单位的事项。")


def require_role(actor: Actor, allowed: Collection[Role], what: str) -> None:
    if actor.role not in allowed:
        names = " or ".join(sorted(str(r) for r in allowed))
        labels = "或".join(ROLE_LABELS[r] for r in sorted(allowed, key=str))
        raise ForbiddenError(f"{what} needs {names}; {actor.role} may not",
                             zh=f"此操作须由{labels}办理，{ROLE_LABELS[actor.role]}无权办理。")


def zh_date(day: date) -> str:
    """A date as people write it: 2024年3月25日 (the kernel's convention, shared/times.py)."""
    return written_date(day)


def zh_deadline(kind: str, day: date) -> str:
    """整改限期 as the form shows it: a date, or 立行立改 with the date it falls due."""
    return f"立行立改（{zh_date(day)}前）" if kind == "immediate" else zh_date(day)


def zh_datetime(instant: datetime, tz: ZoneInfo) -> str:
    """A moment as people write it, local time: 2024年3月25日 23:59."""
    return written_datetime(instant, tz)
