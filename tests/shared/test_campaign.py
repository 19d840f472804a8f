"""The campaign file: the Ezhou 2024 default, its helpers, and refusal of invalid files."""
from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.campaign import (
    CAMPAIGN_FILE_ENV,
    DEFAULT_CAMPAIGN_FILE,
    Campaign,
    CampaignConfigError,
    DeadlineKind,
    SamplingRule,
    load_campaign,
    parse_campaign,
)

pytestmark = pytest.mark.unit

TZ8 = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign()


@pytest.fixture
def raw() -> dict[str, Any]:
    with open(DEFAULT_CAMPAIGN_FILE, "rb") as handle:
        return tomllib.load(handle)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(exc: CampaignConfigError) -> dict[str, str]:
    return dict(exc.problems)


# ----- the packaged default ------------------------------------------------------------------------


def test_default_campaign_is_ezhou_2024_notice_19(campaign: Campaign) -> None:
    assert campaign.id == "ezhou-2024"
    assert campaign.campaign.notice_number == "鄂州民政文〔2024〕19号"
    assert str(campaign.tz) == "Asia/Shanghai"
    assert campaign.unit_codes == ("echeng", "huarong", "liangzihu", "gedian", "linkong")
    assert campaign.unit("gedian").name == "葛店经济开发区城乡融合发展局"


def test_every_domain_township_maps_to_its_unit_with_a_statistics_code(campaign: Campaign) -> None:
    expected = {
        "echeng": "凤凰街道 古楼街道 西山街道 泽林镇 杜山镇 新庙镇 碧石镇 汀祖镇 长港镇 鄂州经济开发区",
        "huarong": "华容镇 庙岭镇 段店镇 临江乡 蒲团乡",
        "liangzihu": "太和镇 东沟镇 梁子镇 涂家垴镇 沼山镇 梧桐湖新区",
        "gedian": "葛店开发区 葛店镇",
        "linkong": "燕矶镇 杨叶镇 花湖镇 沙窝乡",
    }
    for unit, names in expected.items():
        assert [t.name for t in campaign.townships_of(unit)] == names.split()
        for name in names.split():
            assert campaign.unit_of_township(name) == unit
    assert campaign.township("凤凰街道").code == "420704001"
    assert campaign.township("葛店开发区").code == "420703400"
    assert all(t.code and len(t.code) == 9 for t in campaign.townships)


def test_township_lookup_accepts_aliases_and_full_width_spacing(campaign: Campaign) -> None:
    assert campaign.unit_of_township("碧石渡镇") == "echeng"
    assert campaign.unit_of_township(" 华容镇 ") == "huarong"
    assert campaign.unit_of_township("武昌区") is None
    assert campaign.township_belongs_to("燕矶镇", "linkong")
    assert not campaign.township_belongs_to("燕矶镇", "echeng")


def test_project_types_carry_their_sampling_rules(campaign: Campaign) -> None:
    rules = {t.code: t.sampling_rule for t in campaign.project_types}
    assert rules == {"complex": SamplingRule.R1, "community_center": SamplingRule.R2,
                     "rural_center": SamplingRule.R1, "canteen": SamplingRule.R2,
                     "home_adaptation": SamplingRule.R3}
    assert campaign.project_type("home_adaptation").kind == "programme"
    assert campaign.project_type_by_name("幸福食堂").code == "canteen"


def test_service_rule_needs_three_professional_services_including_meal_assistance(campaign: Campaign) -> None:
    assert campaign.service("meal_assistance").name == "助餐"
    assert campaign.meets_service_rule(["meal_assistance", "day_care", "rehabilitation"])
    assert campaign.service_rule_failures(["day_care", "rehabilitation", "health_management"]) == (
        "no_meal_assistance",)
    assert campaign.service_rule_failures(["meal_assistance", "day_care"]) == ("fewer_than_min_services",)
    # Recreation is not a professional elderly service: it does not make up the count.
    assert campaign.service_rule_failures(["meal_assistance", "day_care", "recreation"]) == (
        "fewer_than_min_services",)
    assert campaign.service_rule_failures([]) == ("fewer_than_min_services", "no_meal_assistance")


def test_plan_period_is_the_fourteenth_five_year_plan(campaign: Campaign) -> None:
    assert (campaign.plan_period.first_year, campaign.plan_period.last_year) == (2021, 2025)
    assert campaign.year_in_plan_period(2021) and campaign.year_in_plan_period(2025)
    assert not campaign.year_in_plan_period(2020) and not campaign.year_in_plan_period(2026)


def test_due_dates_of_the_notice(campaign: Campaign) -> None:
    due = {d.code: d.due_on for d in campaign.deadlines}
    assert due["liaisons"] == date(2024, 3, 6)
    assert due["work_plan"] == date(2024, 3, 6)
    assert [d.due_on for d in campaign.deadlines_of_kind(DeadlineKind.MONTHLY_PROBLEM_LIST)] == [
        date(2024, 3, 25), date(2024, 4, 25)]
    assert due["self_inspection_report"] == due["rectification_complete"] == date(2024, 5, 7)
    assert due["typical_case"] == date(2024, 5, 31)
    assert campaign.sampling.inspection_starts_on == date(2024, 5, 8)
    assert campaign.phase_on(date(2024, 5, 8)).code == "summary"
    assert campaign.phase_on(date(2024, 3, 7)).code == "self_inspection"
    assert campaign.phase_on(date(2024, 6, 1)) is None


def test_due_moment_is_end_of_day_local_time(campaign: Campaign) -> None:
    due = campaign.due_at("monthly_list_2024_03")
    assert due == datetime(2024, 3, 25, 23, 59, 59, tzinfo=TZ8)
    assert due.utcoffset() == timedelta(hours=8)
    assert not campaign.is_late("monthly_list_2024_03", datetime(2024, 3, 25, 15, 59, 59, tzinfo=UTC))
    assert campaign.is_late("monthly_list_2024_03", datetime(2024, 3, 25, 16, 0, 0, tzinfo=UTC))


def test_holidays_and_make_up_working_days_of_2024(campaign: Campaign) -> None:
    for day in (date(2024, 4, 4), date(2024, 4, 5), date(2024, 4, 6), date(2024, 5, 1), date(2024, 5, 3),
                date(2024, 5, 5)):
        assert not campaign.is_working_day(day), day
    for day in (date(2024, 4, 7), date(2024, 4, 28), date(2024, 5, 11)):
        assert day.weekday() >= 5 and campaign.is_working_day(day), day
    assert campaign.is_working_day(date(2024, 3, 25))
    assert not campaign.is_working_day(date(2024, 3, 23))  # an ordinary Saturday


def test_reminders_move_before_the_may_holiday_and_never_move_the_deadline(campaign: Campaign) -> None:
    # T-3, T-1, T working days before 2024-05-07 (Tue) skip May 1-5: Apr 29, May 6, May 7.
    assert campaign.reminder_dates(date(2024, 5, 7)) == (date(2024, 4, 29), date(2024, 5, 6),
                                                         date(2024, 5, 7))
    assert campaign.deadline("self_inspection_report").due_on == date(2024, 5, 7)
    # A deadline falling on a holiday: T is the previous working day (Apr 30), Apr 28 is a working Sunday.
    assert campaign.reminder_dates(date(2024, 5, 3), [3, 1, 0]) == (
        date(2024, 4, 26), date(2024, 4, 29), date(2024, 4, 30))
    assert campaign.working_days_before(date(2024, 4, 30), 2) == date(2024, 4, 28)


def test_reminders_before_the_campaign_started_are_dropped(campaign: Campaign) -> None:
    # Liaisons are due 2024-03-06, two days after the notice: T-3 would be Mar 1.
    assert campaign.deadline_reminder_dates("liaisons") == (date(2024, 3, 5), date(2024, 3, 6))


def test_working_days_between_counts_the_make_up_sunday(campaign: Campaign) -> None:
    assert campaign.working_days_between(date(2024, 4, 26), date(2024, 4, 30)) == 3  # Apr 28, 29, 30
    assert campaign.working_days_between(date(2024, 5, 7), date(2024, 5, 7)) == 0


def test_immediate_rectification_is_due_seven_days_after_registration(campaign: Campaign) -> None:
    assert campaign.rectification.immediate_days == 7
    assert campaign.immediate_due_date(date(2024, 3, 28)) == date(2024, 4, 4)


def test_r2_sample_size_rounds_half_up_never_bankers(campaign: Campaign) -> None:
    assert [campaign.r2_sample_size(n) for n in range(7)] == [0, 1, 1, 2, 2, 3, 3]
    assert campaign.sampling.r3_min_households_per_township == 2
    assert campaign.sampling.r3_households_to_draw == 2


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_r2_sample_size_is_the_ceiling_of_half(n: int) -> None:
    campaign = load_campaign()
    size = campaign.r2_sample_size(n)
    assert 2 * size >= n and 2 * (size - 1) < n if n else size == 0


def test_deduction_rules_are_data_with_decimal_points(campaign: Campaign) -> None:
    rule = campaign.deduction_rule("item_open_at_rectification_deadline")
    assert rule.points == "0.5" and rule.points_decimal == Decimal("0.5")
    assert rule.deadline == "rectification_complete"
    assert {r.trigger for r in campaign.deduction_rules} >= {"late_submission", "item_reopened"}


def test_digest_changes_when_any_rule_changes(raw: dict[str, Any]) -> None:
    first = parse_campaign(raw)
    raw["rectification"]["immediate_days"] = 5
    second = parse_campaign(raw)
    assert first.digest != second.digest and len(first.digest) == 64


# ----- loading and refusing --------------------------------------------------------------------------


def test_environment_variable_points_to_another_campaign_file(tmp_path: Path, monkeypatch) -> None:
    text = DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8").replace('id = "ezhou-2024"', 'id = "ezhou-2025"')
    monkeypatch.setenv(CAMPAIGN_FILE_ENV, str(_write(tmp_path, text)))
    assert load_campaign().id == "ezhou-2025"


def test_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(CampaignConfigError, match="nowhere.toml") as caught:
        load_campaign(tmp_path / "nowhere.toml")
    assert caught.value.problems == (("", "file not found"),)


def test_broken_toml_is_refused_with_the_parser_reason(tmp_path: Path) -> None:
    with pytest.raises(CampaignConfigError, match="not valid TOML"):
        load_campaign(_write(tmp_path, "[campaign\nid = 1"))


def test_township_of_an_unknown_unit_is_refused_naming_the_field(raw: dict[str, Any]) -> None:
    raw["townships"][3]["unit"] = "wuchang"
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw, source="test.toml")
    problems = _problems(caught.value)
    assert "unknown unit 'wuchang'" in problems["townships[3].unit"]
    assert "test.toml" in str(caught.value) and "townships[3].unit" in str(caught.value)


def test_a_township_in_two_units_is_refused(raw: dict[str, Any]) -> None:
    raw["townships"].append({"name": "凤凰街道", "unit": "huarong"})
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw)
    assert "exactly one unit" in _problems(caught.value)[f"townships[{len(raw['townships']) - 1}].name"]


def test_a_due_date_outside_its_phase_is_refused(raw: dict[str, Any]) -> None:
    index = next(i for i, d in enumerate(raw["deadlines"]) if d["code"] == "typical_case")
    raw["deadlines"][index]["due_on"] = date(2024, 5, 1)
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw)
    assert "outside its phase 'summary'" in _problems(caught.value)[f"deadlines[{index}].due_on"]


def test_unknown_required_service_and_unknown_field_are_both_reported(raw: dict[str, Any]) -> None:
    raw["service_rule"]["required_services"] = ["meals"]
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw)
    assert "unknown service 'meals'" in _problems(caught.value)["service_rule.required_services[0]"]

    raw["service_rule"]["required_services"] = ["meal_assistance"]
    raw["service_rule"]["minimum"] = 3
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw)
    assert _problems(caught.value)["service_rule.minimum"] == "unknown field (a typo?)"


def test_points_must_be_a_decimal_string_and_times_must_be_valid(raw: dict[str, Any]) -> None:
    raw["deduction_rules"][0]["points"] = "lots"
    raw["campaign"]["timezone"] = "Mars/Olympus"
    del raw["plan_period"]["last_year"]
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw)
    problems = _problems(caught.value)
    assert "not a decimal number" in problems["deduction_rules[0].points"]
    assert "unknown time zone" in problems["campaign.timezone"]
    assert problems["plan_period.last_year"] == "required field is missing"


def test_overlapping_phases_and_a_holiday_that_is_also_a_working_day_are_refused(raw: dict[str, Any]) -> None:
    raw["phases"][1]["starts_on"] = date(2024, 3, 6)
    raw["calendar"]["make_up_working_days"].append(date(2024, 5, 1))
    with pytest.raises(CampaignConfigError) as caught:
        parse_campaign(raw)
    problems = _problems(caught.value)
    assert "overlaps phase 'mobilisation'" in problems["phases[1].starts_on"]
    assert "2024-05-01 is also listed as a holiday" in problems["calendar.make_up_working_days"]


def test_campaign_is_immutable(campaign: Campaign) -> None:
    with pytest.raises(ValidationError):  # frozen: pydantic refuses the assignment
        campaign.rectification.immediate_days = 1  # type: ignore[misc]
    assert isinstance(campaign.units, tuple)


def test_due_time_is_configurable_per_deadline(raw: dict[str, Any]) -> None:
    raw["deadlines"][0]["due_time"] = time(17, 30)
    campaign = parse_campaign(raw)
    assert campaign.due_at(raw["deadlines"][0]["code"]).time() == time(17, 30)
