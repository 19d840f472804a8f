"""The inspection service's view of the registry: built from registry events exactly once, and
right whatever order at-least-once delivery brings them in."""
from __future__ import annotations

import tomllib
import uuid
from fractions import Fraction

import pytest

from services.inspection import domain as d
from services.inspection import sampling
from services.inspection.config import InspectionDeps, sampling_policy
from services.inspection.projections import registry_view_projection as registry_consumer
from services.inspection.queries import registry_view, sampling_households
from shared.campaign import DEFAULT_CAMPAIGN_FILE, CampaignConfigError, load_campaign, parse_campaign
from shared.consuming import ConsumerRuntime, Outcome, handle
from shared.envelope import Delivery
from shared.messages import Event
from shared.store import PostgresEventStore, create_pool
from tests.inspection import support as s

CAMPAIGN = load_campaign()


def _delivery(event: Event) -> Delivery:
    return Delivery(event_id=uuid.uuid4(), event_type=event.type_name,
                    schema_version=event.schema_version, source="registry",
                    stream_id=s.stream_of(event), stream_version=1,
                    payload=event.model_dump(mode="json"))


@pytest.fixture
async def deliver(database):
    pool = await create_pool(database, role="lookback_inspection", max_size=2)
    spec, store = registry_consumer(), PostgresEventStore(pool)
    deps = InspectionDeps.from_campaign(CAMPAIGN)

    async def send(delivery: Delivery) -> Outcome:
        result = await handle(pool, spec, delivery,
                              runtime=ConsumerRuntime(service="inspection", store=store, deps=deps))
        return result.outcome

    send.pool = pool  # type: ignore[attr-defined]
    try:
        yield send
    finally:
        await pool.close()


@pytest.mark.integration
async def test_a_late_registration_does_not_bring_a_retired_project_back(deliver):
    project = s.RETIRED_CANTEEN
    assert await deliver(_delivery(s.retirement(project, "改作他用"))) is Outcome.HANDLED
    assert await deliver(_delivery(project)) is Outcome.HANDLED
    projects, _ = await registry_view(deliver.pool)
    [view] = projects
    assert view == d.ProjectView(project_id=project.project_id, unit="echeng", township="古楼街道",
                                 project_type="canteen", provincial_key=False, retired=True,
                                 retired_reason="改作他用", name=project.name, project_year=2022)


@pytest.mark.integration
async def test_the_newest_assessment_decides_the_provincial_flag_whatever_the_arrival_order(deliver):
    project = s.facility("EC-RURAL-7", "echeng", "碧石镇", "rural_center", provincial_key=True)
    for event in (s.assessment(project, 2, provincial_key=False),
                  s.assessment(project, 1, provincial_key=True), project):
        assert await deliver(_delivery(event)) is Outcome.HANDLED
    projects, _ = await registry_view(deliver.pool)
    assert [(p.project_id, p.provincial_key, p.name) for p in projects] == [
        ("EC-RURAL-7", False, project.name)]


@pytest.mark.integration
async def test_households_arriving_before_their_programme_are_kept_and_labelled(deliver):
    programme = s.programme("EC-HA-X", "echeng", "凤凰街道")
    registered = _delivery(s.households(programme, ["FH-1", "FH-2"]))
    assert await deliver(registered) is Outcome.HANDLED
    assert await deliver(registered) is Outcome.DUPLICATE         # redelivered: no second effect
    projects, households = await registry_view(deliver.pool)
    assert [(p.project_id, p.project_type, p.name) for p in projects] == [
        ("EC-HA-X", "home_adaptation", "")]
    assert await deliver(_delivery(programme)) is Outcome.HANDLED
    projects, households = await registry_view(deliver.pool)
    assert [(p.project_id, p.name, p.project_year) for p in projects] == [
        ("EC-HA-X", programme.name, 2023)]
    assert households == [d.HouseholdView("FH-1", "EC-HA-X", "echeng", "凤凰街道"),
                          d.HouseholdView("FH-2", "EC-HA-X", "echeng", "凤凰街道")]
    count = await deliver.pool.fetchval("SELECT count(*) FROM inspection.households")
    assert count == 2
    inbox = await deliver.pool.fetchval(
        "SELECT count(*) FROM es.inbox WHERE consumer = 'inspection.on-registry'")
    assert inbox == 2


@pytest.mark.integration
async def test_a_frame_frozen_from_the_view_lists_what_the_events_said(deliver):
    for event in s.registry_world():
        assert await deliver(_delivery(event)) is Outcome.HANDLED
    projects, households = await registry_view(deliver.pool)
    policy = sampling_policy(CAMPAIGN)
    frames = {f.stratum: f for f in d.build_frames(s.UNITS, projects, households, policy)}
    assert frames["echeng/canteen"].items == tuple(f"EC-CANTEEN-{n}" for n in range(1, 6))
    assert [e.code for e in frames["echeng/canteen"].exclusions] == ["retired"]
    assert frames["echeng/rural_center"].items == ("EC-RURAL-1",)
    assert [e.item_id for e in frames["echeng/complex"].exclusions] == ["EC-COMPLEX-2"]
    assert dict(frames["echeng/home_adaptation"].townships) == {
        "凤凰街道": tuple(f"FH-{n}" for n in range(1, 6)), "泽林镇": ("ZL-1", "ZL-2", "ZL-3")}


# --- pure parts --------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_household_code_two_programmes_of_a_unit_share_is_qualified_by_place_and_year():
    rows = [
        {"household_code": "H-001", "programme_id": "P-2022", "unit": "echeng",
         "township": "凤凰街道", "adaptation_year": 2022},
        {"household_code": "H-001", "programme_id": "P-2023", "unit": "echeng",
         "township": "凤凰街道", "adaptation_year": 2023},
        {"household_code": "H-002", "programme_id": "P-2023", "unit": "echeng",
         "township": "凤凰街道", "adaptation_year": 2023},
        {"household_code": "H-001", "programme_id": "P-HR", "unit": "huarong",
         "township": "华容镇", "adaptation_year": 2023},
    ]
    codes = [h.household_code for h in sampling_households(rows)]
    assert codes == ["H-001@凤凰街道2022", "H-001@凤凰街道2023", "H-002", "H-001"]
    # ...so the frame can be built (a duplicate code would be refused by the sampling module).
    households = sampling_households(rows)
    frames = d.build_frames(["echeng", "huarong"], [], households, sampling_policy(CAMPAIGN))
    assert {f.stratum: f.size for f in frames}["echeng/home_adaptation"] == 3


@pytest.mark.unit
def test_the_sampling_policy_comes_from_the_campaign_file():
    policy = sampling_policy(CAMPAIGN)
    assert dict(policy.rules) == {t.code: sampling.Rule(t.sampling_rule.value)
                                  for t in CAMPAIGN.project_types}
    assert policy.rules["canteen"] is sampling.Rule.SHARE
    assert policy.r2_share == Fraction(1, 2)
    assert (policy.min_households, policy.households_per_township) == (2, 2)


def _campaign_with(**sampling_settings: int):
    with open(DEFAULT_CAMPAIGN_FILE, "rb") as handle_:
        data = tomllib.load(handle_)
    data["sampling"].update(sampling_settings)
    return parse_campaign(data)


@pytest.mark.unit
def test_a_campaigns_own_share_and_household_numbers_are_frozen_into_the_frames():
    policy = sampling_policy(_campaign_with(r2_numerator=1, r2_denominator=3,
                                            r3_min_households_per_township=3,
                                            r3_households_to_draw=1))
    households = [d.HouseholdView(f"H-{n}", "EC-HA", "echeng", "凤凰街道") for n in range(3)]
    projects = [d.ProjectView(f"C-{n}", "echeng", "凤凰街道", "canteen") for n in range(7)]
    frames = {f.stratum: f for f in d.build_frames(["echeng"], projects, households, policy)}
    canteens = frames["echeng/canteen"]
    assert canteens.frame_object()["share"] == {"numerator": 1, "denominator": 3}
    assert sampling.draw_stratum(canteens, draw_id="d", entropy="e").sample_size == 3  # ⌈7/3⌉
    adaptation = frames["echeng/home_adaptation"].frame_object()
    assert (adaptation["min_households"], adaptation["households_per_township"]) == (3, 1)


@pytest.mark.unit
def test_a_campaign_asking_for_more_townships_than_the_algorithm_draws_is_refused():
    with pytest.raises(CampaignConfigError) as excinfo:
        sampling_policy(_campaign_with(r3_townships_to_draw=2))
    assert excinfo.value.problems[0][0] == "sampling.r3_townships_to_draw"
