"""The kernel's vocabulary (codes with their Chinese) and times (one offset, dates as people write
them): pure helpers every service uses."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from zoneinfo import ZoneInfo

import pytest

from shared.campaign import load_campaign
from shared.times import iso_local, json_value, written_date, written_datetime
from shared.vocabulary import Term, Terms, campaign_terms, enum_terms

pytestmark = pytest.mark.unit

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


def test_a_term_is_found_by_its_code_label_or_alias_whatever_the_width_and_case():
    terms = enum_terms("colour", "颜色", Colour, {Colour.RED: ("红色", "红"), Colour.GREEN: "绿色"})
    assert terms.find("RED").code == "red"
    assert terms.find(" 红 色 ").code == "red"
    assert terms.find("红").code == "red"
    assert terms.find("ｇｒｅｅｎ").code == "green"           # full-width letters
    assert terms.find("蓝色") is None
    assert terms.label("green") == "绿色" and terms.label("blue") == "blue"
    assert terms.valid() == "red（红色）、green（绿色）"


def test_an_enum_member_without_a_label_is_refused():
    with pytest.raises(ValueError, match="green"):
        enum_terms("colour", "颜色", Colour, {Colour.RED: "红色"})


def test_one_word_may_not_name_two_codes():
    with pytest.raises(ValueError, match="would name both"):
        Terms("x", "X", (Term("a", "甲", aliases=("同",)), Term("b", "乙", aliases=("同",))))
    with pytest.raises(ValueError, match="twice"):
        Terms("x", "X", (Term("a", "甲"), Term("a", "乙")))


def test_the_campaign_terms_carry_the_campaign_files_names():
    campaign = load_campaign()
    units, services, types = campaign_terms(campaign, ["unit", "service", "project_type"])
    assert units.label("echeng") == "鄂城区民政局" and units.find("鄂城区").code == "echeng"
    assert services.label("meal_assistance") == "助餐"
    assert set(types.codes) == {t.code for t in campaign.project_types}
    with pytest.raises(ValueError):
        campaign_terms(campaign, ["planets"])


def test_instants_are_written_in_the_campaigns_offset_and_dates_as_people_write_them():
    utc = datetime(2024, 3, 25, 15, 59, 59, tzinfo=UTC)
    assert iso_local(utc, SHANGHAI) == "2024-03-25T23:59:59+08:00"
    assert written_date(utc, SHANGHAI) == "2024年3月25日"
    late = datetime(2024, 3, 25, 16, 30, tzinfo=UTC)   # already the 26th in Ezhou
    assert written_datetime(late, SHANGHAI) == "2024年3月26日 00:30"
    assert written_date(date(2024, 5, 7)) == "2024年5月7日"
    assert json_value({"due": utc, "on": date(2024, 3, 6), "list": [utc]}, SHANGHAI) == {
        "due": "2024-03-25T23:59:59+08:00", "on": "2024-03-06",
        "list": ["2024-03-25T23:59:59+08:00"]}
    plus_nine = datetime(2024, 3, 26, 0, 59, 59, tzinfo=timezone(timedelta(hours=9)))
    assert iso_local(plus_nine, SHANGHAI) == iso_local(utc, SHANGHAI)


def test_a_naive_datetime_names_no_instant_and_is_refused():
    with pytest.raises(ValueError):
        iso_local(datetime(2024, 3, 25, 12, 0), SHANGHAI)
