"""附件1 liaisons: each unit's responsible leader and liaison, versioned; decide is pure.

Officials' phones are personal data: sealed under a subject per (unit, role, version), with
masked copies for everyone else.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

from services.registry import commands as c
from services.registry import events as e
from services.registry.domain.rules import (
    REGISTERING_ROLES, Problems, authorise, check_required_text, check_unit, liaison_subject_id,
    tidy_text)
from shared.campaign import Campaign, DeadlineKind
from shared.messages import Actor, Event
from shared.personal_data import (Sealer, SubjectErasedError, mask_phone, mobile_problem,
                                  normalise_phone, phone_problem)

@dataclass(frozen=True, slots=True)
class LiaisonState:
    unit: str
    current: Mapping[str, e.LiaisonRegistered] = field(default_factory=lambda: MappingProxyType({}))

    def version_of(self, role: str) -> int:
        registered = self.current.get(role)
        return registered.version if registered else 0


def evolve_liaisons(state: LiaisonState, event: Event) -> LiaisonState:
    if isinstance(event, e.LiaisonRegistered):
        current = dict(state.current)
        current[event.role.value] = event
        return replace(state, current=MappingProxyType(current))
    raise TypeError(f"not a liaison event: {type(event).__name__}")


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
    authorise(actor, cmd.unit, REGISTERING_ROLES, "register liaisons")
    if state.unit != cmd.unit:
        raise ValueError(f"liaison state of {state.unit} given for unit {cmd.unit}")
    problems = Problems()
    check_unit(problems, cmd.unit, campaign)
    check_required_text(problems, "name", cmd.name, max_length=50)
    check_required_text(problems, "position", cmd.position)
    reason = mobile_problem(cmd.mobile.get_secret_value())
    if reason:
        problems.add("mobile", reason, "格式不正确（11位手机号）")
    office_raw = cmd.office_phone.get_secret_value().strip() if cmd.office_phone is not None else ""
    if office_raw:
        reason = phone_problem(office_raw)
        if reason:
            problems.add("office_phone", reason, "格式不正确（区号-号码，如0711-1234567）")
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
