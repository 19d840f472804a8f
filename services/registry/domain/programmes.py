"""Home-adaptation programmes and their households: state, fold, decide. Pure.

A programme is one (unit, township, year); its households carry names, addresses and phones of
older people only sealed per subject (shared/personal_data.py), never in clear.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

from services.registry import commands as c
from services.registry import events as e
from services.registry.domain.rules import (
    MAX_HOUSEHOLDS_PER_COMMAND, REGISTERING_ROLES, Problems, authorise, household_id_for,
    household_problems, household_subject_id, programme_id_for, programme_problems,
    programme_project_type, refused, tidy_text)
from shared.campaign import Campaign
from shared.errors import NotFoundError
from shared.messages import Actor, Event
from shared.personal_data import Sealer, SubjectErasedError, normalise_phone

@dataclass(frozen=True, slots=True)
class ProgrammeState:
    programme_id: str
    registration: e.AdaptationProgrammeRegistered | None = None
    households: Mapping[str, e.HouseholdRecord] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def exists(self) -> bool:
        return self.registration is not None


def evolve_programme(state: ProgrammeState, event: Event) -> ProgrammeState:
    if isinstance(event, e.AdaptationProgrammeRegistered):
        return replace(state, registration=event)
    if isinstance(event, e.HouseholdsRegistered):
        households = dict(state.households)
        households.update((h.household_code, h) for h in event.households)
        return replace(state, households=MappingProxyType(households))
    raise TypeError(f"not a programme event: {type(event).__name__}")


def programme_stream_for(cmd: c.RegisterAdaptationProgramme, campaign: Campaign) -> str:
    township = campaign.township(cmd.township)
    return e.programme_stream(programme_id_for(cmd.unit, township.name if township else cmd.township, cmd.year))


def decide_register_programme(state: ProgrammeState, cmd: c.RegisterAdaptationProgramme, *,
                              actor: Actor, now: datetime, campaign: Campaign) -> list[Event]:
    authorise(actor, cmd.unit, REGISTERING_ROLES, "register adaptation programmes")
    programme_problems(cmd, campaign, campaign.local_date(now)).raise_if_any()
    township = campaign.township(cmd.township)
    assert township is not None
    expected_id = programme_id_for(cmd.unit, township.name, cmd.year)
    if state.programme_id != expected_id:
        raise ValueError(f"state of {state.programme_id} given for programme {expected_id}")
    programme_type = programme_project_type(campaign)
    assert programme_type is not None  # checked by programme_problems
    registered = e.AdaptationProgrammeRegistered(
        programme_id=state.programme_id, project_type=programme_type.code,
        name=tidy_text(cmd.name) or f"{township.name}{cmd.year}年{programme_type.name}",
        unit=cmd.unit, township=township.name, township_code=township.code, year=cmd.year)
    if state.registration is not None:
        if cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL:
            return []
        raise refused("year", f"a home-adaptation programme of {township.name} for {cmd.year} is "
                              "already registered",
                      f"{township.name}{cmd.year}年的适老化改造计划已经登记过")
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
        raise NotFoundError(f"adaptation programme {state.programme_id} is not registered",
                            zh="未找到该适老化改造计划，请先登记改造计划。")
    programme = state.registration
    authorise(actor, programme.unit, REGISTERING_ROLES, "register households")
    if not cmd.households:
        raise refused("households", "list at least one household", "至少填写一户")
    if len(cmd.households) > MAX_HOUSEHOLDS_PER_COMMAND:
        raise refused("households", f"at most {MAX_HOUSEHOLDS_PER_COMMAND} households per command",
                      f"一次最多登记{MAX_HOUSEHOLDS_PER_COMMAND}户，请分批提交")
    today = campaign.local_date(now)
    problems = Problems()
    seen: dict[str, int] = {}
    for index, household in enumerate(cmd.households):
        prefix = f"households[{index}]."
        problems.extend(household_problems(household, campaign, today, prefix, programme.year))
        code = household.household_code.strip()
        if code in seen:
            problems.add(f"{prefix}household_code", f"{code} is also in households[{seen[code]}]",
                         f"与第{seen[code] + 1}户重复")
        seen.setdefault(code, index)
    problems.raise_if_any()

    new_records: list[e.HouseholdRecord] = []
    for index, household in enumerate(cmd.households):
        try:
            record = _sealed_household(state.programme_id, household, seal)
        except SubjectErasedError:
            problems.add(f"households[{index}].household_code",
                         "this household's personal data was erased; register it under a new "
                         "household code", "对应的个人信息已删除，请用新的户编号登记")
            continue
        existing = state.households.get(record.household_code)
        if existing is None:
            new_records.append(record)
        elif cmd.on_duplicate == c.OnDuplicate.SKIP_IF_IDENTICAL and existing == record:
            continue
        else:
            problems.add(f"households[{index}].household_code",
                         f"{record.household_code} is already registered in this programme",
                         f"{record.household_code}已在本改造计划中登记")
    problems.raise_if_any()
    if not new_records:
        return []
    return [e.HouseholdsRegistered(programme_id=state.programme_id, unit=programme.unit,
                                   township=programme.township, year=programme.year,
                                   households=tuple(new_records))]
