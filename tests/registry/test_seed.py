"""The sample data: every command is valid, and the edge cases later services need are there."""
from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from services.registry import commands as c
from services.registry import domain as d
from services.registry import events as e
from services.registry import handlers as h
from services.registry.events import OperatingStatus as S
from services.registry.handlers import RegistryDeps
from services.registry.seed import SEED_ACTOR, SEED_AS_OF, SINGLE_HOUSEHOLD_TOWNSHIPS, SeedPlan, build_seed
from shared.campaign import Campaign, load_campaign
from shared.personal_data import InMemoryPersonalDataVault, Keyring

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign()


@pytest.fixture(scope="module")
def plan(campaign: Campaign) -> SeedPlan:
    return build_seed(campaign)


@pytest.fixture(scope="module")
def applied(plan: SeedPlan, campaign: Campaign) -> dict[str, d.RegistryState]:
    """Run every seed command through the domain, as the handlers will (stream by stream)."""
    ring = Keyring(generate_missing=True)
    deps = RegistryDeps(campaign, InMemoryPersonalDataVault())
    states: dict[str, d.RegistryState] = {}
    for cmd in plan.commands:
        stream = h.stream_spec(cmd, deps).stream_id
        state = states.get(stream) or d.initial_state(stream)
        events = h.decide_alone(cmd, state, actor=plan.actor, now=plan.as_of, deps=deps, seal=ring)
        assert events, f"seed command changed nothing: {cmd!r}"
        states[stream] = d.fold(state, events)
    return states


def projects(applied: dict[str, d.RegistryState]) -> list[d.ProjectState]:
    return [s for s in applied.values() if isinstance(s, d.ProjectState)]


def programmes(applied: dict[str, d.RegistryState]) -> list[d.ProgrammeState]:
    return [s for s in applied.values() if isinstance(s, d.ProgrammeState)]


def active_count(applied, unit: str, project_type: str) -> int:
    return sum(1 for p in projects(applied) if p.registration.unit == unit
               and p.registration.project_type == project_type and not p.retired)


def test_the_seed_is_deterministic(campaign: Campaign, plan: SeedPlan) -> None:
    assert build_seed(campaign) == plan
    assert plan.actor == SEED_ACTOR and plan.as_of == SEED_AS_OF


def test_every_unit_has_projects_and_a_leader_and_a_liaison(applied, campaign: Campaign) -> None:
    units = Counter(p.registration.unit for p in projects(applied))
    assert set(units) == set(campaign.unit_codes)
    liaisons = [s for s in applied.values() if isinstance(s, d.LiaisonState)]
    assert {s.unit for s in liaisons} == set(campaign.unit_codes)
    assert all(set(s.current) == {"leader", "liaison"} for s in liaisons)


def test_a_unit_has_an_odd_number_of_community_centres(applied) -> None:
    assert active_count(applied, "echeng", "community_center") == 5


def test_a_unit_has_exactly_one_canteen_and_another_none(applied) -> None:
    assert active_count(applied, "huarong", "canteen") == 1
    assert active_count(applied, "linkong", "canteen") == 0
    assert active_count(applied, "gedian", "community_center") == 0


def test_a_township_has_exactly_one_adapted_household(applied) -> None:
    per_township: Counter[str] = Counter()
    per_unit: dict[str, Counter[str]] = defaultdict(Counter)
    for programme in programmes(applied):
        per_township[programme.registration.township] += len(programme.households)
        per_unit[programme.registration.unit][programme.registration.township] += len(programme.households)
    for township in SINGLE_HOUSEHOLD_TOWNSHIPS:
        assert per_township[township] == 1, township
    # 临空: households, but no township with the 2 R3 needs; 葛店: none at all.
    assert per_unit["linkong"] and max(per_unit["linkong"].values()) == 1
    assert "gedian" not in per_unit
    # Elsewhere R3 has a township with at least 2 to draw from.
    for unit in ("echeng", "huarong", "liangzihu"):
        assert max(per_unit[unit].values()) >= 2


def test_statuses_cover_operating_underperforming_not_operating_and_retired(applied) -> None:
    statuses = Counter(p.status for p in projects(applied))
    assert statuses[S.OPERATING] >= 20 and statuses[S.UNDERPERFORMING] >= 5
    assert statuses[S.NOT_OPERATING] >= 4 and statuses[S.RETIRED] == 1
    reasons = {reason for p in projects(applied) for reason in p.status_reasons}
    assert {"no_meal_assistance", "fewer_than_min_services", "not_operating",
            "assessed_underperforming"} <= reasons
    # Every listed project is on the ledger; one was assessed back to operating with evidence.
    assert all(p.on_ledger for p in projects(applied) if p.status in e.LEDGER_STATUSES)
    revived = [p for p in projects(applied) if p.ledger_entries == 1 and not p.on_ledger]
    assert len(revived) == 1 and revived[0].status == S.OPERATING and revived[0].assessments == 1


def test_provincial_key_complexes_and_rural_centres_sit_beside_non_key_ones(applied) -> None:
    flags = Counter((p.registration.project_type, p.registration.provincial_key) for p in projects(applied))
    for project_type in ("complex", "rural_center"):
        assert flags[(project_type, True)] >= 5 and flags[(project_type, False)] >= 2


def test_places_are_real_and_names_and_phones_are_obviously_fictional(
        plan: SeedPlan, campaign: Campaign) -> None:
    for cmd in plan.of_type(c.RegisterProject):
        assert campaign.unit_of_township(cmd.township) == cmd.unit
        assert "(示例)" in cmd.name
        assert cmd.operator.name is None or "(示例)" in cmd.operator.name
    phones = []
    for cmd in plan.of_type(c.RegisterHouseholds):
        for household in cmd.households:
            assert "(示例)" in household.name.get_secret_value()
            if household.phone:
                phones.append(household.phone.get_secret_value())
    for cmd in plan.of_type(c.RegisterLiaison):
        assert "(示例)" in cmd.name
        phones += [cmd.mobile.get_secret_value(), cmd.office_phone.get_secret_value()]
    assert phones and all(re.fullmatch(r"138000[01]\d{4}|0711-0000\d{3}", phone) for phone in phones)
    assert len(set(phones)) == len(phones)


def test_running_the_seed_again_changes_nothing(plan: SeedPlan, campaign: Campaign, applied) -> None:
    ring = Keyring(generate_missing=True)
    deps = RegistryDeps(campaign, InMemoryPersonalDataVault())
    for cmd in plan.of_type(c.RegisterProject) + plan.of_type(c.RegisterAdaptationProgramme):
        stream = h.stream_spec(cmd, deps).stream_id
        assert h.decide_alone(cmd, applied[stream], actor=plan.actor, now=plan.as_of, deps=deps,
                              seal=ring) == []
