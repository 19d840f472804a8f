"""Registry events: the public contract other services build their views from.

Each event carries what inspection and rectification need without asking the registry (unit,
township, type, name, year, flags): event-carried state transfer. None carries an older person's
name, address or phone in clear; those travel only as per-subject ciphertext (`pii1.…`, see
shared/personal_data.py), which erasing the subject makes unreadable without touching the log.

Streams (categories owned by the registry's database role):
- `project-<project_id>`: ProjectRegistered, OperatorChanged, ServicesChanged, ProjectAssessed,
  ProjectRetired, LedgerEntryAdded, LedgerEntryRectified, LedgerRectificationReopened,
  LedgerEntryCleared;
- `adaptation-<programme_id>`: AdaptationProgrammeRegistered, HouseholdsRegistered;
- `liaison-<unit>`: LiaisonRegistered (each registration a new version, never an overwrite).
"""
from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar


from pydantic import AwareDatetime

from shared.messages import Event, EventContract, Record

if TYPE_CHECKING:
    from shared.campaign import Campaign


class OperatingStatus(StrEnum):
    OPERATING = "operating"              # 正常运营
    UNDERPERFORMING = "underperforming"  # 运营不佳
    NOT_OPERATING = "not_operating"      # 未投入运营
    RETIRED = "retired"                  # 改作他用 / 撤并 / 拆除 (with a reason)


# Statuses that put a project on the 台账 ledger.
LEDGER_STATUSES = frozenset({OperatingStatus.UNDERPERFORMING, OperatingStatus.NOT_OPERATING})


class OperatorKind(StrEnum):
    NONE = "none"                                # 无运营主体
    VILLAGE_COMMITTEE = "village_committee"      # 村(居)委会
    ELDERLY_ASSOCIATION = "elderly_association"  # 老年协会
    PROFESSIONAL = "professional"                # 专业运营机构


class RetirementReason(StrEnum):
    REPURPOSED = "repurposed"  # 改作他用
    MERGED = "merged"          # 撤并
    DEMOLISHED = "demolished"  # 拆除
    OTHER = "other"


class LiaisonRole(StrEnum):
    LEADER = "leader"    # 责任领导
    LIAISON = "liaison"  # 联络员


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"


# Chinese for people, and the other words the bulk import accepts, per code (first the label).
# services/registry/vocabulary.py builds GET /vocabulary and the importer's choices from these.
STATUS_LABELS: dict[OperatingStatus, tuple[str, ...]] = {
    OperatingStatus.OPERATING: ("正常运营", "运营", "正常", "运营中"),
    OperatingStatus.UNDERPERFORMING: ("运营不佳", "作用发挥不够", "作用发挥不充分"),
    OperatingStatus.NOT_OPERATING: ("未投入运营", "未运营", "闲置", "未开展运营"),
    OperatingStatus.RETIRED: ("已退出（改作他用、撤并或拆除）", "已退出"),
}
OPERATOR_LABELS: dict[OperatorKind, tuple[str, ...]] = {
    OperatorKind.NONE: ("无运营主体", "无", "暂无"),
    OperatorKind.VILLAGE_COMMITTEE: ("村(居)委会", "村委会", "居委会", "村居委会", "社区居委会"),
    OperatorKind.ELDERLY_ASSOCIATION: ("老年协会", "农村老龄协会", "老龄协会", "村老年协会"),
    OperatorKind.PROFESSIONAL: ("专业运营机构", "专业机构", "专业养老服务机构", "第三方机构"),
}
RETIREMENT_LABELS: dict[RetirementReason, str] = {
    RetirementReason.REPURPOSED: "改作他用", RetirementReason.MERGED: "撤并",
    RetirementReason.DEMOLISHED: "拆除", RetirementReason.OTHER: "其他",
}
LIAISON_ROLE_LABELS: dict[LiaisonRole, str] = {LiaisonRole.LEADER: "责任领导", LiaisonRole.LIAISON: "联络员"}
GENDER_LABELS: dict[Gender, tuple[str, ...]] = {Gender.MALE: ("男", "男性"),
                                                 Gender.FEMALE: ("女", "女性")}


class LedgerState(StrEnum):
    """Where a 台账 entry stands (derived for screens; the events are the facts)."""

    OPEN = "open"                # 待整改
    RECTIFIED = "rectified"      # 整改完成, awaiting the next assessment
    CLEARED = "cleared"          # an assessment found the project operating: off the ledger
    SUPERSEDED = "superseded"    # rectified, then found idle again: a new entry replaced it


LEDGER_STATE_LABELS: dict[LedgerState, str] = {
    LedgerState.OPEN: "在册，待整改",
    LedgerState.RECTIFIED: "整改完成，待复评",
    LedgerState.CLEARED: "已复评正常运营，移出台账",
    LedgerState.SUPERSEDED: "整改后复评仍未达标，已重新列入",
}


# Reason codes. A ledger entry's `reason` is its status; `reason_details` say why in detail.
REASON_NOT_OPERATING = "not_operating"
REASON_UNDERPERFORMING = "underperforming"
REASON_FEWER_THAN_MIN_SERVICES = "fewer_than_min_services"
REASON_ASSESSED_UNDERPERFORMING = "assessed_underperforming"  # an assessor's judgement, services aside
# plus "no_<service code>" for each required service missing, e.g. "no_meal_assistance".

REASON_TEXT = {
    REASON_NOT_OPERATING: "项目未投入运营",
    REASON_UNDERPERFORMING: "项目运营不佳,作用发挥不够",
    REASON_FEWER_THAN_MIN_SERVICES: "专业养老服务不足{min_services}项",
    REASON_ASSESSED_UNDERPERFORMING: "经评估运营不佳",
}


def describe_reason(code: str, campaign: "Campaign | None" = None) -> str:
    """Chinese text of a reason code, for 附件2 rows and screens (`no_meal_assistance` → 未开展助餐服务)."""
    min_services = campaign.service_rule.min_services if campaign else 3
    if code in REASON_TEXT:
        return REASON_TEXT[code].format(min_services=min_services)
    if code.startswith("no_"):
        service = code[3:]
        name = campaign.service(service).name if campaign and campaign.has_service(service) else \
            {"meal_assistance": "助餐"}.get(service, service)
        return f"未开展{name}服务"
    return code


_Record = Record  # frozen, no unknown fields, no control characters in text


class Operator(_Record):
    """运营主体. `name` and the contract period are empty for `none`."""

    kind: OperatorKind
    name: str | None = None
    contract_start: date | None = None
    contract_end: date | None = None


class RegistryEvent(Event):
    """Base of the registry's events (only for isinstance checks)."""


# ----- projects ---------------------------------------------------------------------------------


class ProjectRegistered(RegistryEvent):
    """A facility project entered the registry, with its effective status (the service rule
    applied to what was claimed). A status other than operating comes with a LedgerEntryAdded."""

    type_name: ClassVar[str] = "registry.ProjectRegistered"

    project_id: str
    project_type: str
    name: str
    unit: str
    township: str
    township_code: str | None
    village: str | None
    project_year: int
    provincial_key: bool
    operator: Operator
    services: tuple[str, ...]
    claimed_status: OperatingStatus
    status: OperatingStatus             # effective: the service rule applied to the claim
    status_reasons: tuple[str, ...]     # why status differs from operating (empty when operating)


class OperatorChanged(RegistryEvent):
    """The project's operator (运营主体) changed; the status changes only through an assessment."""

    type_name: ClassVar[str] = "registry.OperatorChanged"

    project_id: str
    project_type: str
    unit: str
    township: str
    previous_operator: Operator
    operator: Operator
    changed_on: date


class ServicesChanged(RegistryEvent):
    """Services now provided. It can make an operating project underperforming (the rule holds
    whatever was claimed); it never takes a project off the ledger: only an assessment does."""

    type_name: ClassVar[str] = "registry.ServicesChanged"

    project_id: str
    project_type: str
    unit: str
    township: str
    previous_services: tuple[str, ...]
    services: tuple[str, ...]
    meets_service_rule: bool
    status: OperatingStatus             # effective status after the change
    status_reasons: tuple[str, ...]


class ProjectAssessed(RegistryEvent):
    """An operating-status assessment (作用发挥评估) with assessor, date and evidence."""

    type_name: ClassVar[str] = "registry.ProjectAssessed"

    project_id: str
    project_type: str
    unit: str
    township: str
    provincial_key: bool
    assessment_no: int                  # 1, 2, … within the project
    claimed_status: OperatingStatus
    status: OperatingStatus             # effective
    previous_status: OperatingStatus
    status_reasons: tuple[str, ...]
    services: tuple[str, ...]
    assessor: str
    assessed_on: date
    evidence: str
    attachment_hashes: tuple[str, ...]  # SHA-256 hex of each attachment's content


class ProjectRetired(RegistryEvent):
    """Out of the sampling frame from now on, with its reason. A ledger entry stays open."""

    type_name: ClassVar[str] = "registry.ProjectRetired"

    project_id: str
    project_type: str
    name: str
    unit: str
    township: str
    previous_status: OperatingStatus
    reason_code: RetirementReason
    reason: str
    retired_on: date


class LedgerEntryAdded(RegistryEvent):
    """The project is on the 台账 (not operating or underperforming). Rectification opens a
    problem item from it; the row has what 附件2 needs (area, name, year)."""

    type_name: ClassVar[str] = "registry.LedgerEntryAdded"

    entry_id: str
    project_id: str
    project_type: str
    project_name: str
    project_year: int
    unit: str
    township: str
    village: str | None
    provincial_key: bool
    reason: str                         # "not_operating" | "underperforming"
    reason_details: tuple[str, ...]     # e.g. ("fewer_than_min_services", "no_meal_assistance")
    status: OperatingStatus
    listed_on: date
    # The entry this one replaces: it was rectified (整改完成), yet the next assessment still found
    # the project idle, so the project is back on the 台账 with a new entry (and a new item).
    supersedes: str | None = None


class LedgerEntryRectified(RegistryEvent):
    """整改完成: the problem item opened from this 台账 entry passed its 销号 (rectification's
    CloseOutVerified, `verification_event_id`). The project stays on the ledger until an
    assessment finds it operating (LedgerEntryCleared); one finding it idle again puts it back
    with a new entry (LedgerEntryAdded with `supersedes`). `entry_open` is False when the entry had
    already left the ledger before the 销号 (the fact is kept on the entry's history all the same)."""

    type_name: ClassVar[str] = "registry.LedgerEntryRectified"

    entry_id: str
    project_id: str
    project_type: str
    unit: str
    township: str
    entry_open: bool
    problem_id: str
    seq_no: int | None                  # the item's 序号 in the unit's 问题清单
    verified_by: str
    verifier_role: str
    conclusion: str
    verified_at: AwareDatetime
    verification_event_id: str          # rectification's CloseOutVerified event


class LedgerRectificationReopened(RegistryEvent):
    """反弹: the item whose 销号 marked the entry rectified was found again (rectification's
    ProblemReopened); the entry is back to awaiting rectification (the new item's 销号 marks it
    rectified again)."""

    type_name: ClassVar[str] = "registry.LedgerRectificationReopened"

    entry_id: str
    project_id: str
    project_type: str
    unit: str
    township: str
    problem_id: str
    new_problem_id: str
    reason: str
    reopening_event_id: str             # rectification's ProblemReopened event


class LedgerEntryCleared(RegistryEvent):
    """Off the ledger: an assessment found the project operating, with evidence."""

    type_name: ClassVar[str] = "registry.LedgerEntryCleared"

    entry_id: str
    project_id: str
    project_type: str
    unit: str
    township: str
    cleared_on: date
    assessment_no: int
    assessor: str
    evidence: str
    attachment_hashes: tuple[str, ...]


# ----- home adaptation --------------------------------------------------------------------------


class AdaptationProgrammeRegistered(RegistryEvent):
    """A home-adaptation programme: one (unit, township, year), with household records."""

    type_name: ClassVar[str] = "registry.AdaptationProgrammeRegistered"

    programme_id: str
    project_type: str                   # "home_adaptation"
    name: str
    unit: str
    township: str
    township_code: str | None
    year: int


class HouseholdRecord(_Record):
    """An adapted household (改造户). Personal fields only as ciphertext under `subject_id`."""

    household_id: str
    household_code: str
    village: str
    adaptation_year: int
    items: tuple[str, ...]              # adaptation item codes from the campaign file
    acceptance_date: date
    subject_id: str
    name_sealed: str
    address_sealed: str
    phone_sealed: str | None = None


class HouseholdsRegistered(RegistryEvent):
    """Adapted households of a programme; names, addresses and phones only sealed per subject."""

    type_name: ClassVar[str] = "registry.HouseholdsRegistered"

    programme_id: str
    unit: str
    township: str
    year: int
    households: tuple[HouseholdRecord, ...]


# ----- liaisons ---------------------------------------------------------------------------------


class LiaisonRegistered(RegistryEvent):
    """附件1: a unit's responsible leader or liaison. Officials' phones are personal data: sealed
    under `subject_id`, with masked copies for everyone else."""

    type_name: ClassVar[str] = "registry.LiaisonRegistered"

    unit: str
    role: LiaisonRole
    version: int                        # 1, 2, … per (unit, role): later changes are new versions
    name: str
    gender: Gender
    position: str
    subject_id: str
    mobile_sealed: str
    mobile_masked: str
    office_phone_sealed: str | None
    office_phone_masked: str | None
    submitted_late: bool                # after the campaign's liaisons deadline


ALL_EVENTS: tuple[type[RegistryEvent], ...] = (
    ProjectRegistered, OperatorChanged, ServicesChanged, ProjectAssessed, ProjectRetired,
    LedgerEntryAdded, LedgerEntryRectified, LedgerRectificationReopened, LedgerEntryCleared, AdaptationProgrammeRegistered, HouseholdsRegistered,
    LiaisonRegistered,
)


# The registry's published contract: its name, the stream categories only it writes, its events.
CONTRACT = EventContract(service="registry",
                         categories=("project", "adaptation", "liaison", "registryimport"),
                         events=ALL_EVENTS)


def project_stream(project_id: str) -> str:
    return f"project-{project_id}"


def programme_stream(programme_id: str) -> str:
    return f"adaptation-{programme_id}"


def liaison_stream(unit: str) -> str:
    return f"liaison-{unit}"
