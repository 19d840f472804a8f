"""The campaign file read as the rectification service's rules (config.py), and the scoring rules
the file can express beyond the defaults: rebound and overdue triggers, a cap per rule."""
from __future__ import annotations

import copy
import tomllib
from datetime import date, time
from decimal import Decimal

import pytest

from services.rectification import scoring as s
from services.rectification.config import rectification_config
from shared.campaign import DEFAULT_CAMPAIGN_FILE, load_campaign, parse_campaign

from .support import RULES, Desk, at, inspector, reporter, reviewer

pytestmark = pytest.mark.unit

EZHOU = tomllib.loads(DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8"))


def test_the_ezhou_file_gives_the_notices_dates_and_its_deduction_rules():
    config = rectification_config(load_campaign())
    rules = config.rules
    assert (rules.immediate_days, rules.timezone, rules.due_time) == (7, "Asia/Shanghai", time(23, 59, 59))
    assert rules.monthly_list_months == ("2024-03", "2024-04")
    assert rules.monthly_list_due("2024-04") == at(2024, 4, 25, 23, 59, 59)
    assert (rules.self_inspection_report_due, rules.typical_case_due, rules.ledger_item_deadline) == (
        date(2024, 5, 7), date(2024, 5, 31), date(2024, 5, 7))
    assert [(r.id, r.trigger, r.points, r.date, r.max_points) for r in config.deduction_rules] == [
        ("late_submission", s.Trigger.LATE_SUBMISSION, Decimal(1), None, None),
        ("item_open_at_rectification_deadline", s.Trigger.ITEM_OPEN_AT, Decimal("0.5"),
         date(2024, 5, 7), Decimal(5)),
        ("item_reopened", s.Trigger.ITEM_REOPENED, Decimal(1), None, None),
        ("missing_typical_case", s.Trigger.MISSING_SUBMISSION, Decimal(2), None, None),
    ]
    assert [r.deadline for r in config.deduction_rules] == [None, None, None, "typical_case"]
    assert [(x.code, x.kind, x.min_count) for x in rules.submissions] == [
        ("liaisons", "liaisons", 1), ("work_plan", "work_plan", 1),
        ("monthly_list_2024_03", "monthly_list", 1), ("monthly_list_2024_04", "monthly_list", 1),
        ("self_inspection_report", "self_inspection_report", 1), ("typical_case", "typical_case", 1)]
    assert rules.work_plan_due == date(2024, 3, 6)
    assert config.not_applied == ()
    assert config.units == ("echeng", "huarong", "liangzihu", "gedian", "linkong")
    assert config.unit_name("gedian") == "葛店经济开发区城乡融合发展局"
    assert not config.is_working_day(date(2024, 5, 3)) and config.is_working_day(date(2024, 5, 11))
    assert config.yellow_working_days == 3


def test_another_campaigns_dates_and_settings_come_from_its_file():
    data = copy.deepcopy(EZHOU)
    data["rectification"]["immediate_days"] = 3
    data["supervision"]["yellow_within_working_days"] = 2
    for deadline in data["deadlines"]:
        if deadline["code"] == "monthly_list_2024_04":
            deadline["due_on"] = date(2024, 4, 28)   # a make-up working Sunday
    config = rectification_config(parse_campaign(data))
    assert config.rules.immediate_days == 3 and config.yellow_working_days == 2
    assert config.rules.monthly_list_due("2024-03") == at(2024, 3, 25, 23, 59, 59)
    assert config.rules.monthly_list_due("2024-04") == at(2024, 4, 28, 23, 59, 59)


def test_every_rule_the_ezhou_file_lists_is_applied():
    """GET /rules lists nothing as "not applied" for the packaged campaign (issue 12)."""
    assert rectification_config(load_campaign()).not_applied == ()


def test_submission_rules_tied_to_one_deadline_are_applied_to_it():
    data = copy.deepcopy(EZHOU)
    data["deduction_rules"] += [
        {"id": "late_march_only", "trigger": "late_submission", "points": "1",
         "deadline": "monthly_list_2024_03", "description": "只算3月"},
        {"id": "no_liaisons", "trigger": "missing_submission", "points": "1",
         "deadline": "liaisons", "description": "未报联络员"},
        {"id": "overdue", "trigger": "item_overdue", "points": "0.2", "description": "逾期"},
    ]
    config = rectification_config(parse_campaign(data))
    assert config.not_applied == ()
    applied = {r.id: r for r in config.deduction_rules}
    assert (applied["late_march_only"].trigger, applied["late_march_only"].deadline) == (
        s.Trigger.LATE_SUBMISSION, "monthly_list_2024_03")
    assert (applied["no_liaisons"].trigger, applied["no_liaisons"].deadline) == (
        s.Trigger.MISSING_SUBMISSION, "liaisons")
    assert config.deduction_rules[-1].trigger is s.Trigger.ITEM_OVERDUE


def test_a_submission_rule_naming_a_deadline_that_is_no_submission_is_listed_not_guessed():
    data = copy.deepcopy(EZHOU)
    data["deduction_rules"] += [
        {"id": "not_rectified", "trigger": "missing_submission", "points": "1",
         "deadline": "rectification_complete", "description": "未整改到位"}]
    config = rectification_config(parse_campaign(data))
    assert [rule_id for rule_id, _ in config.not_applied] == ["not_rectified"]


def test_deadlines_with_different_due_times_are_refused():
    data = copy.deepcopy(EZHOU)
    for deadline in data["deadlines"]:
        if deadline["code"] == "typical_case":
            deadline["due_time"] = time(17, 0)
    with pytest.raises(ValueError, match="one due time"):
        rectification_config(parse_campaign(data))


# ------------------------------------------------------------------------------------------
# Scoring rules the campaign file can express


def test_a_capped_rule_takes_no_more_than_its_cap_in_total():
    desk = Desk()
    ids = [desk.register(reporter("echeng"), at(2024, 3, 10)) for _ in range(4)]
    rules = s.parse_deduction_rules([{"id": "open", "points": "0.5", "trigger": "item_open_at",
                                      "date": "2024-05-07", "max_points": "1.2"}])
    occurrences = s.triggers_due("echeng", items=desk.items(), reports=[], now=at(2024, 5, 8),
                                 deduction_rules=rules, rules=RULES)
    occurrences = [o for o in occurrences if o.trigger is s.Trigger.ITEM_OPEN_AT]
    score = s.ScoreState("echeng")
    first = s.decide_deductions(score, occurrences[:1], rules)
    for event in first:
        score = s.evolve_score(score, event)
    rest = s.decide_deductions(score, occurrences, rules)
    assert [e.points for e in first + rest] == ["0.5", "0.5", "0.2"]
    assert [e.trigger_ref for e in first + rest] == [f"{pid}@2024-05-07" for pid in ids[:3]]
    for event in rest:
        score = s.evolve_score(score, event)
    assert score.deducted == Decimal("1.2")
    assert s.decide_deductions(score, occurrences, rules) == []


def test_a_rebound_deducts_once_per_original_item():
    desk = Desk()
    pid = desk.register(reporter("gedian"), at(2024, 3, 10), unit="gedian")
    desk.start(pid, reporter("gedian"), at(2024, 3, 11))
    desk.request(pid, reporter("gedian"), at(2024, 3, 12))
    desk.verify(pid, reviewer("gedian"), at(2024, 3, 13))
    rules = s.parse_deduction_rules([{"id": "rebound", "points": "1", "trigger": "item_reopened"}])
    assert [o for o in s.triggers_due("gedian", items=desk.items(), reports=[], now=at(2024, 3, 14),
                                      deduction_rules=rules, rules=RULES)
            if o.trigger is s.Trigger.ITEM_REOPENED] == []
    successor = desk.reopen(pid, inspector(), at(2024, 4, 1))
    found = [o for o in s.triggers_due("gedian", items=desk.items(), reports=[], now=at(2024, 4, 2),
                                       deduction_rules=rules, rules=RULES)
             if o.trigger is s.Trigger.ITEM_REOPENED]
    assert [o.ref for o in found] == [f"{pid}@reopened"]
    [event] = s.decide_deductions(s.ScoreState("gedian"), found, rules)
    assert (event.rule_id, event.points) == ("rebound", "1") and successor != pid


def test_an_item_past_its_own_deadline_is_overdue_once_and_a_timely_one_never():
    desk = Desk()
    late = desk.register(reporter("echeng"), at(2024, 3, 10), deadline=date(2024, 3, 20))
    timely = desk.register(reporter("echeng"), at(2024, 3, 10), deadline=date(2024, 3, 20))
    withdrawn = desk.register(reporter("echeng"), at(2024, 3, 10), deadline=date(2024, 3, 20))
    desk.withdraw(withdrawn, reviewer("echeng"), at(2024, 3, 25))
    for pid in (late, timely):
        desk.start(pid, reporter("echeng"), at(2024, 3, 11))
    desk.request(timely, reporter("echeng"), at(2024, 3, 19))
    desk.verify(timely, reviewer("echeng"), at(2024, 3, 20, 23, 59, 59))
    rules = s.parse_deduction_rules([{"id": "overdue", "points": "0.2", "trigger": "item_overdue"}])

    def overdue(now):
        return [o.ref for o in s.triggers_due("echeng", items=desk.items(), reports=[], now=now,
                                              deduction_rules=rules, rules=RULES)
                if o.trigger is s.Trigger.ITEM_OVERDUE]

    assert overdue(at(2024, 3, 20, 23, 59, 59)) == []
    assert overdue(at(2024, 3, 21)) == [f"{late}@overdue"]
    desk.request(late, reporter("echeng"), at(2024, 3, 22))
    desk.verify(late, reviewer("echeng"), at(2024, 3, 23))
    assert overdue(at(2024, 6, 1)) == [f"{late}@overdue"]   # closed late: still counted, same ref


def test_a_cap_is_data_and_checked():
    [rule] = s.parse_deduction_rules([{"id": "x", "points": "1", "trigger": "late_submission",
                                       "max_points": 3}])
    assert rule.max_points == Decimal(3)
    with pytest.raises(ValueError):
        s.parse_deduction_rules([{"id": "x", "points": "1", "trigger": "late_submission",
                                  "max_points": "0"}])
