"""Registry commands: what a principal asks the registry to do (frozen, imperative).

Codes (unit, project type, township, services, items) are plain strings here and checked against
the campaign file by the domain, which reports every bad field at once (ValidationFailed → 422).
Personal fields of older people and officials' phones are `SecretStr`, so a command that ends up
in a log or a traceback shows `**********`, never the value.
"""
from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, ConfigDict, SecretStr

from services.registry.events import Gender, LiaisonRole, OperatingStatus, Operator, RetirementReason
from shared.messages import Command, Record
from shared.personal_data import FreeText


class OnDuplicate(StrEnum):
    REFUSE = "refuse"                        # the form: a second project of that name is an error
    SKIP_IF_IDENTICAL = "skip_if_identical"  # imports and seeds: re-running changes nothing


class RegisterProject(Command):
    model_config = ConfigDict(json_schema_extra={"examples": [{  # for the API document only
        "project_type": "community_center", "name": "凤凰街道(示例)社区居家养老服务中心",
        "unit": "echeng", "township": "凤凰街道", "village": "滨湖社区", "project_year": 2022,
        "provincial_key": False,
        "operator": {"kind": "professional", "name": "(示例)颐康养老服务有限公司",
                     "contract_start": "2023-01-01", "contract_end": "2025-12-31"},
        "services": ["meal_assistance", "day_care", "cleaning_assistance"],
        "claimed_status": "operating"}]})

    project_type: str
    name: str
    unit: str
    township: str
    village: str | None = None
    project_year: int
    provincial_key: bool = False
    operator: Operator
    services: tuple[str, ...] = ()
    claimed_status: OperatingStatus
    on_duplicate: OnDuplicate = OnDuplicate.REFUSE


class ChangeOperator(Command):
    project_id: str
    operator: Operator
    changed_on: date


class ChangeServices(Command):
    project_id: str
    services: tuple[str, ...]


class AssessProject(Command):
    project_id: str
    claimed_status: OperatingStatus
    assessor: str
    assessed_on: date
    evidence: FreeText
    attachment_hashes: tuple[str, ...] = ()
    # The services the assessor found running; None keeps the registered ones.
    services: tuple[str, ...] | None = None


class RetireProject(Command):
    project_id: str
    reason_code: RetirementReason
    reason: FreeText
    retired_on: date


class RegisterAdaptationProgramme(Command):
    unit: str
    township: str
    year: int
    name: str | None = None
    on_duplicate: OnDuplicate = OnDuplicate.REFUSE


class HouseholdInput(Record):
    """One household row of a RegisterHouseholds command."""

    household_code: str
    village: str
    adaptation_year: int
    items: tuple[str, ...]
    acceptance_date: date
    name: SecretStr
    address: SecretStr
    phone: SecretStr | None = None


class RegisterHouseholds(Command):
    programme_id: str
    households: tuple[HouseholdInput, ...]
    on_duplicate: OnDuplicate = OnDuplicate.REFUSE


class RegisterLiaison(Command):
    """附件1 row: a unit's responsible leader (责任领导) or liaison (联络员)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{  # for the API document only
        "unit": "echeng", "role": "liaison", "name": "陈某某(示例)", "gender": "female",
        "position": "养老服务科科长", "mobile": "13800009876", "office_phone": "0711-0000123"}]})

    unit: str
    role: LiaisonRole
    name: str
    gender: Gender
    position: str
    mobile: SecretStr
    office_phone: SecretStr | None = None


class MarkLedgerEntryRectified(Command):
    """A verified 销号 of a problem item opened from this project's 台账 entry. Sent only by the
    registry's own reaction to rectification's CloseOutVerified (subscribers.py), never over HTTP:
    the facts come from the verifying event, which it names."""

    project_id: str
    entry_id: str                       # the entry the item was opened for
    ledger_reason: str | None = None    # the item's ledger reason (which entry it stands for)
    problem_id: str
    seq_no: int | None = None
    verified_by: str
    verifier_role: str
    conclusion: str
    verified_at: AwareDatetime
    verification_event_id: str


class ReopenLedgerRectification(Command):
    """反弹 of the item whose 销号 marked the entry rectified (rectification's ProblemReopened);
    sent only by the registry's own reaction."""

    project_id: str
    entry_id: str
    problem_id: str
    new_problem_id: str
    reason: str
    reopening_event_id: str


RegistryCommand = (RegisterProject | ChangeOperator | ChangeServices | AssessProject | RetireProject
                   | RegisterAdaptationProgramme | RegisterHouseholds | RegisterLiaison)


class ImportItem(Record):
    """A command and the spreadsheet rows it came from (one per household for household commands)."""

    sheet: str
    rows: tuple[int, ...]
    command: RegistryCommand


class ImportRegistry(Command):
    """A parsed spreadsheet (importing/parsing.py): every row decided as one, all or none, in ONE
    atomic multi-stream append. A refused row refuses the import and names sheet, row, column."""

    items: tuple[ImportItem, ...]
    source_digest: str  # SHA-256 of the uploaded bytes: names the import for its record
    project_rows: int
    household_rows: int

    @property
    def commands(self) -> tuple[RegistryCommand, ...]:
        return tuple(item.command for item in self.items)


class RegisterSample(Command):
    """The sample data (seed.py): its commands in order, as ONE atomic append, so a crash never
    leaves half a sample that "is not empty" and so would never be completed."""

    commands: tuple[RegistryCommand, ...]
