"""Registry rules, in memory: decide → events → evolve."""
from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.registry import commands as c
from services.registry import domain as d
from services.registry import events as e
from services.registry import handlers as h
from services.registry.events import OperatingStatus as S
from services.registry.handlers import RegistryDeps
from shared.campaign import Campaign, load_campaign
from shared.errors import ForbiddenError, IllegalTransitionError, NotFoundError, ValidationFailed
from shared.messages import Actor
from shared.personal_data import InMemoryPersonalDataVault, Keyring, mask_phone
from tests.support.actors import AUDITOR, LEADER, city_admin, inspector, reporter, reviewer
from tests.support.clock import LOCAL, at

pytestmark = pytest.mark.unit

NOW = at(2024, 3, 20)
ADMIN = city_admin()
ECHENG_REPORTER = reporter("echeng")
ECHENG_REVIEWER = reviewer("echeng")
HUARONG_REPORTER = reporter("huarong")
INSPECTOR = inspector()

GOOD_SERVICES = ("meal_assistance", "day_care", "rehabilitation")
EVIDENCE_HASH = hashlib.sha256(b"photo of the canteen at lunch").hexdigest()
PROFESSIONAL = e.Operator(kind=e.OperatorKind.PROFESSIONAL, name="某某养老服务有限公司(示例)",
                          contract_start=date(2023, 1, 1), contract_end=date(2025, 12, 31))


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign()


def register_cmd(**overrides: Any) -> c.RegisterProject:
    values: dict[str, Any] = dict(
        project_type="canteen", name="凤凰街道(示例)幸福食堂", unit="echeng", township="凤凰街道",
        village="滨湖社区", project_year=2023, provincial_key=False, operator=PROFESSIONAL,
        services=GOOD_SERVICES, claimed_status=S.OPERATING)
    values.update(overrides)
    return c.RegisterProject(**values)


def new_project(cmd: c.RegisterProject) -> d.ProjectState:
    return d.ProjectState(project_id=d.project_id_for(cmd.unit, cmd.project_type, cmd.name))


def registered(campaign: Campaign, cmd: c.RegisterProject | None = None,
               actor: Actor = ADMIN) -> tuple[d.ProjectState, list]:
    cmd = cmd or register_cmd()
    state = new_project(cmd)
    events = d.decide_register_project(state, cmd, actor=actor, now=NOW, campaign=campaign)
    return d.fold(state, events), events


def fields_of(error: ValidationFailed) -> dict[str, str]:
    return {p.field: p.reason for p in error.problems}


def assess(state: d.ProjectState, campaign: Campaign, *, actor: Actor = ADMIN,
           **overrides: Any) -> tuple[d.ProjectState, list]:
    values: dict[str, Any] = dict(project_id=state.project_id, claimed_status=S.OPERATING,
                                  assessor="张某(示例)", assessed_on=date(2024, 3, 20),
                                  evidence="现场查看:午餐时段有老人就餐", attachment_hashes=(EVIDENCE_HASH,))
    values.update(overrides)
    events = d.decide_assess_project(state, c.AssessProject(**values), actor=actor, now=NOW,
                                     campaign=campaign)
    return d.fold(state, events), events


# ----- registering a project ----------------------------------------------------------------------------


def test_registering_an_operating_project_records_every_fact_other_services_need(campaign: Campaign) -> None:
    state, events = registered(campaign)
    [event] = events
    assert isinstance(event, e.ProjectRegistered)
    assert (event.unit, event.township, event.township_code, event.project_type) == (
        "echeng", "凤凰街道", "420704001", "canteen")
    assert event.status == S.OPERATING and event.status_reasons == ()
    assert event.operator.kind == e.OperatorKind.PROFESSIONAL
    assert state.exists and state.status == S.OPERATING and not state.on_ledger


def test_fewer_than_three_services_is_underperforming_whatever_was_claimed(campaign: Campaign) -> None:
    state, events = registered(campaign, register_cmd(services=("meal_assistance", "day_care")))
    project, ledger = events
    assert project.claimed_status == S.OPERATING
    assert project.status == S.UNDERPERFORMING
    assert project.status_reasons == ("fewer_than_min_services",)
    assert isinstance(ledger, e.LedgerEntryAdded)
    assert ledger.reason == "underperforming" and ledger.reason_details == ("fewer_than_min_services",)
    assert state.on_ledger


def test_no_meal_assistance_is_underperforming_even_with_many_services(campaign: Campaign) -> None:
    _, events = registered(campaign, register_cmd(
        services=("day_care", "rehabilitation", "health_management", "cleaning_assistance")))
    assert events[0].status == S.UNDERPERFORMING
    assert events[0].status_reasons == ("no_meal_assistance",)
    assert events[1].reason_details == ("no_meal_assistance",)


def test_recreation_does_not_count_as_a_professional_service(campaign: Campaign) -> None:
    _, events = registered(campaign, register_cmd(services=("meal_assistance", "day_care", "recreation")))
    assert events[0].status == S.UNDERPERFORMING


def test_a_not_operating_project_goes_on_the_ledger_with_everything_for_a_problem_row(
        campaign: Campaign) -> None:
    _, events = registered(campaign, register_cmd(
        project_type="rural_center", name="(示例)村农村互助照料中心", township="新庙镇", village="(示例)村",
        provincial_key=True, services=(), operator=e.Operator(kind=e.OperatorKind.NONE),
        claimed_status=S.NOT_OPERATING, project_year=2021))
    project, ledger = events
    assert project.status == S.NOT_OPERATING
    assert ledger.reason == "not_operating" and ledger.reason_details == ("not_operating",)
    assert (ledger.project_name, ledger.project_year, ledger.unit, ledger.township,
            ledger.provincial_key) == (
        "(示例)村农村互助照料中心", 2021, "echeng", "新庙镇", True)
    assert ledger.listed_on == date(2024, 3, 20)
    assert ledger.entry_id == d.ledger_entry_id_for(project.project_id, 1)


def test_a_township_of_another_unit_is_refused(campaign: Campaign) -> None:
    with pytest.raises(ValidationFailed) as caught:
        registered(campaign, register_cmd(township="华容镇"))
    assert "belongs to 华容区民政局" in fields_of(caught.value)["township"]


def test_every_bad_field_is_reported_at_once(campaign: Campaign) -> None:
    cmd = register_cmd(project_type="school", name="  ", township="武昌区", project_year=2019,
                       services=("meal_assistance", "karaoke"),
                       operator=e.Operator(kind=e.OperatorKind.PROFESSIONAL, name=""))
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_project(d.ProjectState(project_id=d.project_id_for("echeng", "school", "  ")), cmd,
                                  actor=ADMIN, now=NOW, campaign=campaign)
    problems = fields_of(caught.value)
    assert set(problems) == {"project_type", "name", "township", "project_year", "services[1]",
                             "operator.name"}
    assert "outside the plan period 十四五 (2021-2025)" in problems["project_year"]
    assert caught.value.code == "validation_failed"


def test_a_future_project_year_is_refused_even_inside_the_plan(campaign: Campaign) -> None:
    with pytest.raises(ValidationFailed) as caught:
        registered(campaign, register_cmd(project_year=2025))
    assert "in the future" in fields_of(caught.value)["project_year"]


def test_home_adaptation_is_not_registered_as_a_facility(campaign: Campaign) -> None:
    with pytest.raises(ValidationFailed) as caught:
        registered(campaign, register_cmd(project_type="home_adaptation"))
    assert "adaptation programme" in fields_of(caught.value)["project_type"]


def test_an_operator_of_kind_none_has_no_name_and_contracts_end_after_they_start(campaign: Campaign) -> None:
    with pytest.raises(ValidationFailed) as caught:
        registered(campaign, register_cmd(operator=e.Operator(kind=e.OperatorKind.NONE, name="某公司")))
    assert "operator" in fields_of(caught.value)
    with pytest.raises(ValidationFailed) as caught:
        registered(campaign, register_cmd(operator=PROFESSIONAL.model_copy(
            update={"contract_end": date(2022, 1, 1)})))
    assert fields_of(caught.value) == {"operator.contract_end": "is before contract_start"}


def test_duplicate_names_within_unit_and_type_are_refused(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    # Full-width brackets and extra spaces are the same name.
    again = register_cmd(name="凤凰街道 (示例) 幸福食堂", village="另一个社区")
    assert d.project_id_for("echeng", "canteen", again.name) == state.project_id
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_project(state, again, actor=ADMIN, now=NOW, campaign=campaign)
    assert "already registered" in fields_of(caught.value)["name"]


def test_the_same_name_in_another_type_or_unit_is_a_different_project() -> None:
    base = d.project_id_for("echeng", "canteen", "幸福食堂(示例)")
    assert base != d.project_id_for("echeng", "community_center", "幸福食堂(示例)")
    assert base != d.project_id_for("huarong", "canteen", "幸福食堂(示例)")


def test_an_identical_registration_is_skipped_when_the_caller_asks(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    same = register_cmd(on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)
    assert d.decide_register_project(state, same, actor=ADMIN, now=NOW, campaign=campaign) == []
    different = register_cmd(on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL, project_year=2022)
    with pytest.raises(ValidationFailed):
        d.decide_register_project(state, different, actor=ADMIN, now=NOW, campaign=campaign)


# ----- who may command -------------------------------------------------------------------------------------


def test_a_district_role_registers_only_in_its_own_unit(campaign: Campaign) -> None:
    registered(campaign, actor=ECHENG_REPORTER)
    registered(campaign, actor=ECHENG_REVIEWER)
    with pytest.raises(ForbiddenError, match="unit huarong"):
        registered(campaign, actor=HUARONG_REPORTER)


def test_a_district_role_cannot_touch_another_units_project(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    with pytest.raises(ForbiddenError):
        d.decide_change_services(state, c.ChangeServices(project_id=state.project_id,
                                                         services=("meal_assistance",)),
                                 actor=HUARONG_REPORTER, now=NOW, campaign=campaign)
    with pytest.raises(ForbiddenError):
        assess(state, campaign, actor=HUARONG_REPORTER)


@pytest.mark.parametrize("actor", [LEADER, AUDITOR])
def test_leader_and_auditor_cannot_command(campaign: Campaign, actor: Actor) -> None:
    with pytest.raises(ForbiddenError, match="may read but not"):
        registered(campaign, actor=actor)
    state, _ = registered(campaign)
    with pytest.raises(ForbiddenError):
        assess(state, campaign, actor=actor)
    with pytest.raises(ForbiddenError):
        d.decide_register_liaison(d.LiaisonState(unit="echeng"), liaison_cmd(), actor=actor, now=NOW,
                                  campaign=campaign, seal=Keyring(generate_missing=True))


def test_an_inspector_may_assess_but_not_register(campaign: Campaign) -> None:
    with pytest.raises(ForbiddenError):
        registered(campaign, actor=INSPECTOR)
    state, _ = registered(campaign)
    _, events = assess(state, campaign, actor=INSPECTOR)
    assert isinstance(events[0], e.ProjectAssessed)


# ----- operators, services, retirement ----------------------------------------------------------------------


def test_changing_the_operator_records_before_and_after(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    association = e.Operator(kind=e.OperatorKind.ELDERLY_ASSOCIATION, name="(示例)村老年协会")
    [event] = d.decide_change_operator(state, c.ChangeOperator(project_id=state.project_id,
                                                               operator=association,
                                                               changed_on=date(2024, 3, 18)),
                                       actor=ECHENG_REPORTER, now=NOW, campaign=campaign)
    assert event.previous_operator == PROFESSIONAL and event.operator == association
    state = d.fold(state, [event])
    assert state.operator == association
    # The same operator again changes nothing.
    assert d.decide_change_operator(state, c.ChangeOperator(project_id=state.project_id, operator=association,
                                                            changed_on=date(2024, 3, 19)),
                                    actor=ADMIN, now=NOW, campaign=campaign) == []


def test_losing_meal_assistance_makes_an_operating_project_underperforming_and_listed(
        campaign: Campaign) -> None:
    state, _ = registered(campaign)
    events = d.decide_change_services(state, c.ChangeServices(
        project_id=state.project_id, services=("day_care", "rehabilitation", "health_management")),
        actor=ADMIN, now=NOW, campaign=campaign)
    changed, ledger = events
    assert changed.status == S.UNDERPERFORMING and not changed.meets_service_rule
    assert changed.previous_services == GOOD_SERVICES
    assert ledger.reason_details == ("no_meal_assistance",)
    assert d.fold(state, events).on_ledger


def test_restoring_services_does_not_take_a_project_off_the_ledger(campaign: Campaign) -> None:
    state, _ = registered(campaign, register_cmd(services=("meal_assistance",)))
    assert state.on_ledger
    [changed] = d.decide_change_services(state, c.ChangeServices(project_id=state.project_id,
                                                                 services=GOOD_SERVICES),
                                         actor=ADMIN, now=NOW, campaign=campaign)
    assert changed.meets_service_rule and changed.status == S.UNDERPERFORMING
    assert d.fold(state, [changed]).on_ledger


def test_unknown_services_are_refused(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    with pytest.raises(ValidationFailed) as caught:
        d.decide_change_services(state, c.ChangeServices(project_id=state.project_id, services=("massage",)),
                                 actor=ADMIN, now=NOW, campaign=campaign)
    assert fields_of(caught.value) == {"services[0]": "unknown service 'massage'"}


def test_retiring_needs_a_reason_and_happens_once(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    with pytest.raises(ValidationFailed) as caught:
        d.decide_retire_project(state, c.RetireProject(project_id=state.project_id, reason_code="repurposed",
                                                       reason="  ", retired_on=date(2024, 3, 1)),
                                actor=ADMIN, now=NOW, campaign=campaign)
    assert fields_of(caught.value) == {"reason": "is required"}
    [retired] = d.decide_retire_project(
        state, c.RetireProject(project_id=state.project_id, reason_code="repurposed",
                               reason="改作社区卫生服务站(示例)", retired_on=date(2024, 3, 1)),
        actor=ECHENG_REPORTER, now=NOW, campaign=campaign)
    assert retired.previous_status == S.OPERATING and retired.reason_code == e.RetirementReason.REPURPOSED
    state = d.fold(state, [retired])
    assert state.retired and state.status == S.RETIRED
    with pytest.raises(IllegalTransitionError):
        d.decide_retire_project(state, c.RetireProject(project_id=state.project_id, reason_code="other",
                                                       reason="again", retired_on=date(2024, 3, 2)),
                                actor=ADMIN, now=NOW, campaign=campaign)
    with pytest.raises(IllegalTransitionError):
        assess(state, campaign)


def test_retiring_a_listed_project_keeps_its_ledger_entry_open(campaign: Campaign) -> None:
    state, _ = registered(campaign, register_cmd(claimed_status=S.NOT_OPERATING))
    [retired] = d.decide_retire_project(state, c.RetireProject(
        project_id=state.project_id, reason_code="merged", reason="并入(示例)中心",
        retired_on=date(2024, 3, 19)),
        actor=ADMIN, now=NOW, campaign=campaign)
    assert d.fold(state, [retired]).on_ledger


def test_commands_on_an_unknown_project_are_not_found(campaign: Campaign) -> None:
    with pytest.raises(NotFoundError):
        assess(d.ProjectState(project_id="nope"), campaign)
    with pytest.raises(NotFoundError):
        d.decide_change_services(d.ProjectState(project_id="nope"),
                                 c.ChangeServices(project_id="nope", services=GOOD_SERVICES),
                                 actor=ADMIN, now=NOW, campaign=campaign)


# ----- assessments and the 台账 ledger ---------------------------------------------------------------------


def test_an_assessment_claiming_operating_is_underperforming_without_meal_assistance(
        campaign: Campaign) -> None:
    state, _ = registered(campaign)
    state, events = assess(state, campaign, services=("day_care", "rehabilitation", "health_management"))
    changed, assessed, ledger = events
    assert isinstance(changed, e.ServicesChanged)
    assert assessed.claimed_status == S.OPERATING and assessed.status == S.UNDERPERFORMING
    assert assessed.previous_status == S.OPERATING and assessed.assessment_no == 1
    assert assessed.evidence and assessed.attachment_hashes == (EVIDENCE_HASH,)
    assert isinstance(ledger, e.LedgerEntryAdded) and ledger.listed_on == date(2024, 3, 20)
    assert state.on_ledger and state.services == ("day_care", "rehabilitation", "health_management")


def test_leaving_the_ledger_needs_an_operating_assessment_with_evidence(campaign: Campaign) -> None:
    state, events = registered(campaign, register_cmd(claimed_status=S.NOT_OPERATING))
    entry_id = events[1].entry_id
    with pytest.raises(ValidationFailed) as caught:
        assess(state, campaign, attachment_hashes=())
    assert "needs evidence" in fields_of(caught.value)["attachment_hashes"]
    with pytest.raises(ValidationFailed) as caught:
        assess(state, campaign, evidence=" ")
    assert fields_of(caught.value) == {"evidence": "is required"}

    state, events = assess(state, campaign)
    assessed, cleared = events
    assert assessed.status == S.OPERATING and assessed.previous_status == S.NOT_OPERATING
    assert isinstance(cleared, e.LedgerEntryCleared) and cleared.entry_id == entry_id
    assert cleared.attachment_hashes == (EVIDENCE_HASH,) and cleared.assessor == "张某(示例)"
    assert not state.on_ledger and state.status == S.OPERATING


def test_an_operating_claim_that_fails_the_rule_keeps_the_project_on_the_ledger(campaign: Campaign) -> None:
    state, _ = registered(campaign, register_cmd(services=("meal_assistance", "day_care")))
    state, events = assess(state, campaign)
    assert [type(x) for x in events] == [e.ProjectAssessed]
    assert events[0].status == S.UNDERPERFORMING and state.on_ledger


def test_a_second_listing_gets_a_new_entry_after_the_first_was_cleared(campaign: Campaign) -> None:
    state, first = registered(campaign, register_cmd(claimed_status=S.NOT_OPERATING))
    state, _ = assess(state, campaign)
    state, events = assess(state, campaign, claimed_status=S.UNDERPERFORMING, assessed_on=date(2024, 3, 20))
    ledger = events[-1]
    assert isinstance(ledger, e.LedgerEntryAdded) and ledger.entry_id != first[1].entry_id
    assert ledger.reason_details == ("assessed_underperforming",)


def test_assessment_fields_are_checked(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    with pytest.raises(ValidationFailed) as caught:
        assess(state, campaign, assessor="", assessed_on=date(2024, 3, 21), attachment_hashes=("abc",),
               claimed_status=S.RETIRED)
    assert set(fields_of(caught.value)) == {"assessor", "assessed_on", "attachment_hashes[0]",
                                            "claimed_status"}


def test_an_assessment_cannot_be_dated_before_the_latest_one(campaign: Campaign) -> None:
    state, _ = registered(campaign)
    state, _ = assess(state, campaign, assessed_on=date(2024, 3, 15))
    with pytest.raises(ValidationFailed) as caught:
        assess(state, campaign, assessed_on=date(2024, 3, 10))
    assert "before the latest assessment" in fields_of(caught.value)["assessed_on"]


# ----- home adaptation ------------------------------------------------------------------------------------


def programme_cmd(**overrides: Any) -> c.RegisterAdaptationProgramme:
    values: dict[str, Any] = dict(unit="huarong", township="华容镇", year=2022)
    values.update(overrides)
    return c.RegisterAdaptationProgramme(**values)


def household(code: str = "HR-2022-001", **overrides: Any) -> c.HouseholdInput:
    values: dict[str, Any] = dict(household_code=code, village="芦花村", adaptation_year=2022,
                                  items=("anti_slip_floor", "bathroom_grab_bar"),
                                  acceptance_date=date(2022, 11, 3), name=SecretStr("刘某某(示例)"),
                                  address=SecretStr("华容镇芦花村(示例)3组12号"),
                                  phone=SecretStr("13800000011"))
    values.update(overrides)
    return c.HouseholdInput(**values)


def programme(campaign: Campaign) -> d.ProgrammeState:
    cmd = programme_cmd()
    state = d.initial_state(d.programme_stream_for(cmd, campaign))
    events = d.decide_register_programme(state, cmd, actor=ADMIN, now=NOW, campaign=campaign)
    return d.fold(state, events)


def test_a_programme_is_one_township_and_year_of_a_unit(campaign: Campaign) -> None:
    state = programme(campaign)
    registration = state.registration
    assert (registration.unit, registration.township, registration.township_code, registration.year) == (
        "huarong", "华容镇", "420703100", 2022)
    assert registration.project_type == "home_adaptation"
    assert registration.name == "华容镇2022年特殊困难老年人家庭适老化改造"
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_programme(state, programme_cmd(), actor=ADMIN, now=NOW, campaign=campaign)
    assert "already registered" in fields_of(caught.value)["year"]
    assert d.decide_register_programme(state, programme_cmd(on_duplicate="skip_if_identical"),
                                       actor=ADMIN, now=NOW, campaign=campaign) == []


def test_a_programme_in_another_units_township_is_refused(campaign: Campaign) -> None:
    cmd = programme_cmd(township="太和镇")
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_programme(d.initial_state(d.programme_stream_for(cmd, campaign)), cmd,
                                    actor=ADMIN, now=NOW, campaign=campaign)
    assert "梁子湖区民政局" in fields_of(caught.value)["township"]


def test_households_carry_personal_data_only_sealed(campaign: Campaign) -> None:
    state = programme(campaign)
    ring = Keyring(generate_missing=True)
    cmd = c.RegisterHouseholds(programme_id=state.programme_id, households=(household(),))
    [event] = d.decide_register_households(state, cmd, actor=ADMIN, now=NOW, campaign=campaign, seal=ring)
    text = event.model_dump_json()
    for secret in ("刘某某", "芦花村(示例)3组", "13800000011"):
        assert secret not in text
    [record] = event.households
    assert (event.unit, event.township, record.household_code, record.village) == (
        "huarong", "华容镇", "HR-2022-001", "芦花村")
    assert record.subject_id == d.household_subject_id(state.programme_id, "HR-2022-001")
    assert ring.open(record.subject_id, "name", record.name_sealed) == "刘某某(示例)"
    assert ring.open(record.subject_id, "phone", record.phone_sealed) == "13800000011"
    assert "刘某某" not in repr(cmd)  # commands hide personal data from logs too


def test_household_rows_are_validated_field_by_field(campaign: Campaign) -> None:
    state = programme(campaign)
    bad = (household("HR-1", phone=SecretStr("12345"), items=()),
           household("420702195001011234"),
           household("HR-1", adaptation_year=2023, acceptance_date=date(2025, 1, 1), name=SecretStr(" ")))
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_households(state, c.RegisterHouseholds(programme_id=state.programme_id,
                                                                 households=bad),
                                     actor=ADMIN, now=NOW, campaign=campaign,
                                     seal=Keyring(generate_missing=True))
    problems = fields_of(caught.value)
    assert "households[0].phone" in problems and "households[0].items" in problems
    assert "ID card" in problems["households[1].household_code"]
    assert "also in households[0]" in problems["households[2].household_code"]
    assert "programme's year 2022" in problems["households[2].adaptation_year"]
    assert "in the future" in problems["households[2].acceptance_date"]
    assert problems["households[2].name"] == "is required"


def test_reregistering_identical_households_adds_nothing_but_a_changed_one_is_refused(
        campaign: Campaign) -> None:
    state = programme(campaign)
    ring = Keyring(generate_missing=True)
    first = c.RegisterHouseholds(programme_id=state.programme_id,
                                 households=(household("A1"), household("A2")))
    state = d.fold(state, d.decide_register_households(state, first, actor=ADMIN, now=NOW, campaign=campaign,
                                                       seal=ring))
    assert set(state.households) == {"A1", "A2"}
    again = first.model_copy(update={"on_duplicate": c.OnDuplicate.SKIP_IF_IDENTICAL,
                                     "households": (household("A1"), household("A2"), household("A3"))})
    [event] = d.decide_register_households(state, again, actor=ADMIN, now=NOW, campaign=campaign, seal=ring)
    assert [h.household_code for h in event.households] == ["A3"]
    changed = again.model_copy(update={"households": (household("A1", village="铁咀村"),)})
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_households(state, changed, actor=ADMIN, now=NOW, campaign=campaign, seal=ring)
    assert "already registered" in fields_of(caught.value)["households[0].household_code"]


def test_households_need_an_existing_programme_and_the_right_unit(campaign: Campaign) -> None:
    cmd = c.RegisterHouseholds(programme_id="missing", households=(household(),))
    with pytest.raises(NotFoundError):
        d.decide_register_households(d.ProgrammeState(programme_id="missing"), cmd, actor=ADMIN, now=NOW,
                                     campaign=campaign, seal=Keyring(generate_missing=True))
    state = programme(campaign)
    with pytest.raises(ForbiddenError):
        d.decide_register_households(state, cmd.model_copy(update={"programme_id": state.programme_id}),
                                     actor=ECHENG_REPORTER, now=NOW, campaign=campaign,
                                     seal=Keyring(generate_missing=True))


def test_an_erased_household_cannot_be_silently_re_registered(campaign: Campaign) -> None:
    state = programme(campaign)
    subject = d.household_subject_id(state.programme_id, "E1")
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_households(state, c.RegisterHouseholds(programme_id=state.programme_id,
                                                                 households=(household("E1"),)),
                                     actor=ADMIN, now=NOW, campaign=campaign, seal=Keyring({subject: None}))
    assert "erased" in fields_of(caught.value)["households[0].household_code"]


# ----- liaisons ---------------------------------------------------------------------------------------------


def liaison_cmd(**overrides: Any) -> c.RegisterLiaison:
    values: dict[str, Any] = dict(unit="echeng", role="liaison", name="陈某(示例)", gender="female",
                                  position="养老服务科科长", mobile=SecretStr("13800000001"),
                                  office_phone=SecretStr("0711-0000001"))
    values.update(overrides)
    return c.RegisterLiaison(**values)


def test_a_liaison_is_registered_with_phones_sealed_and_masked(campaign: Campaign) -> None:
    ring = Keyring(generate_missing=True)
    [event] = d.decide_register_liaison(d.LiaisonState(unit="echeng"), liaison_cmd(), actor=ECHENG_REPORTER,
                                        now=NOW.replace(month=3, day=5), campaign=campaign, seal=ring)
    assert (event.name, event.role, event.version, event.position) == (
        "陈某(示例)", "liaison", 1, "养老服务科科长")
    assert event.mobile_masked == "138****0001" == mask_phone("13800000001")
    assert event.office_phone_masked == "0711-***0001"
    assert "13800000001" not in event.model_dump_json()
    assert ring.open(event.subject_id, "mobile", event.mobile_sealed) == "13800000001"
    assert ring.open(event.subject_id, "office_phone", event.office_phone_sealed) == "0711-0000001"
    assert event.submitted_late is False


def test_a_liaison_after_march_6_is_registered_late(campaign: Campaign) -> None:
    [event] = d.decide_register_liaison(d.LiaisonState(unit="echeng"), liaison_cmd(role="leader"),
                                        actor=ADMIN, now=datetime(2024, 3, 7, 0, 0, 1, tzinfo=LOCAL),
                                        campaign=campaign,
                                        seal=Keyring(generate_missing=True))
    assert event.submitted_late is True


def test_liaison_phones_must_be_valid(campaign: Campaign) -> None:
    with pytest.raises(ValidationFailed) as caught:
        d.decide_register_liaison(d.LiaisonState(unit="echeng"),
                                  liaison_cmd(mobile=SecretStr("0711-1234567"), office_phone=SecretStr("123"),
                                              position=""),
                                  actor=ADMIN, now=NOW, campaign=campaign,
                                  seal=Keyring(generate_missing=True))
    assert set(fields_of(caught.value)) == {"mobile", "office_phone", "position"}


def test_a_changed_liaison_is_a_new_version_and_a_resubmission_is_not(campaign: Campaign) -> None:
    ring = Keyring(generate_missing=True)
    state = d.LiaisonState(unit="echeng")
    state = d.fold(state, d.decide_register_liaison(state, liaison_cmd(), actor=ADMIN, now=NOW,
                                                    campaign=campaign, seal=ring))
    assert d.decide_register_liaison(state, liaison_cmd(mobile=SecretStr("138 0000 0001")),
                                     actor=ADMIN, now=NOW, campaign=campaign, seal=ring) == []
    [second] = d.decide_register_liaison(state, liaison_cmd(mobile=SecretStr("13800000002")), actor=ADMIN,
                                         now=NOW, campaign=campaign, seal=ring)
    assert second.version == 2 and second.subject_id != state.current["liaison"].subject_id


def test_a_district_role_registers_only_its_own_liaisons(campaign: Campaign) -> None:
    with pytest.raises(ForbiddenError):
        d.decide_register_liaison(d.LiaisonState(unit="echeng"), liaison_cmd(),
                                  actor=HUARONG_REPORTER, now=NOW, campaign=campaign,
                                  seal=Keyring(generate_missing=True))


# ----- the generic entry points -----------------------------------------------------------------------------


def test_the_command_table_names_each_commands_stream_and_decision(campaign: Campaign) -> None:
    deps = RegistryDeps(campaign, InMemoryPersonalDataVault())
    cmd = register_cmd()
    stream = h.stream_spec(cmd, deps).stream_id
    assert stream == f"project-{d.project_id_for('echeng', 'canteen', cmd.name)}"
    state = d.initial_state(stream)
    events = h.decide_alone(cmd, state, actor=ADMIN, now=NOW, deps=deps)
    state = d.fold(state, events)
    assert isinstance(state, d.ProjectState) and state.exists
    assert h.stream_spec(liaison_cmd(), deps).stream_id == "liaison-echeng"
    assert (h.stream_spec(programme_cmd(township=" 华容镇"), deps).stream_id
            == h.stream_spec(programme_cmd(), deps).stream_id)
    with pytest.raises(AttributeError):  # a project decision given a liaison state
        h.decide_alone(cmd, d.LiaisonState(unit="echeng"), actor=ADMIN, now=NOW, deps=deps)


def test_events_round_trip_through_the_event_registry(campaign: Campaign) -> None:
    registry = e.CONTRACT.registry()
    state, events = registered(campaign, register_cmd(claimed_status=S.NOT_OPERATING))
    for event in events:
        payload = event.model_dump(mode="json")
        assert registry.load(event.type_name, event.schema_version, payload) == event


def test_ids_never_change_between_releases() -> None:
    # Re-importing last month's file must find last month's projects: these values are frozen.
    assert d.project_id_for("echeng", "canteen", "凤凰街道(示例)幸福食堂") == (
        "48d33dd4-7702-5e51-9bb7-741fa6264ff5")
    assert d.project_id_for("echeng", "canteen", "凤凰街道 (示例) 幸福食堂") == (
        "48d33dd4-7702-5e51-9bb7-741fa6264ff5")
    assert d.programme_id_for("huarong", "华容镇", 2022) == "98f5a365-4d14-5ab7-bcda-9e9d6276ea37"
    assert d.household_subject_id("p", " A1 ") == "99b17281-b35e-5877-b9d6-30f1f1fcba43"
    assert d.household_id_for("p", " A1 ") == d.household_id_for("p", "A1")


# ----- the ledger invariant under any sequence of commands --------------------------------------------------

_SERVICE_SETS = st.lists(st.sampled_from(["meal_assistance", "day_care", "rehabilitation", "recreation",
                                          "cleaning_assistance"]), unique=True, max_size=4).map(tuple)
_STEP = st.one_of(
    st.tuples(st.just("services"), _SERVICE_SETS),
    st.tuples(st.just("assess"), st.sampled_from([S.OPERATING, S.UNDERPERFORMING, S.NOT_OPERATING]),
              st.booleans(), st.one_of(st.none(), _SERVICE_SETS)),
)


@settings(max_examples=150, deadline=None)
@given(initial=_SERVICE_SETS, claimed=st.sampled_from([S.OPERATING, S.UNDERPERFORMING, S.NOT_OPERATING]),
       steps=st.lists(_STEP, max_size=8))
def test_a_project_is_on_the_ledger_exactly_when_it_is_not_operating_or_underperforming(
        initial: tuple[str, ...], claimed: S, steps: list) -> None:
    campaign = load_campaign()
    state, events = registered(campaign, register_cmd(services=initial, claimed_status=claimed))
    for step in steps:
        try:
            if step[0] == "services":
                new = d.decide_change_services(state, c.ChangeServices(project_id=state.project_id,
                                                                       services=step[1]),
                                               actor=ADMIN, now=NOW, campaign=campaign)
            else:
                _, status, with_files, services = step
                state_before = state
                state, new = assess(state_before, campaign, claimed_status=status, services=services,
                                    attachment_hashes=(EVIDENCE_HASH,) if with_files else ())
                state = state_before
        except ValidationFailed as refused:
            # The only refusal here: leaving the ledger without attached evidence.
            assert state.on_ledger and "attachment_hashes" in fields_of(refused)
            continue
        events += new
        state = d.fold(state, new)
        assert state.on_ledger == (state.status in e.LEDGER_STATUSES)
        if state.status == S.OPERATING:
            assert campaign.meets_service_rule(state.services)
    added = sum(isinstance(x, e.LedgerEntryAdded) for x in events)
    cleared = sum(isinstance(x, e.LedgerEntryCleared) for x in events)
    assert added - cleared == (1 if state.on_ledger else 0)
