"""Every rule the campaign file lists is applied (issue 12, "rules listed but not applied"): a late
rule tied to one deadline, missing submissions of every kind, more than one typical case, the work
plan, 附件1, and refunds (a compensating event, never an edit) when an extension approved after a
deduction takes its ground away. Pure: the domain and the scoring rules, as the handlers run them."""
from __future__ import annotations

import copy
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import scoring as s
from services.rectification.config import rectification_config
from shared.campaign import parse_campaign
from shared.errors import IllegalTransitionError

from .support import CAMPAIGN, CONFIG, RULES, Desk, at, city_admin, reporter, reviewer

pytestmark = pytest.mark.unit

UNIT = "echeng"


def config_with(rules: list[dict], **deadline_changes: dict) -> tuple:
    data = copy.deepcopy(CAMPAIGN.model_dump(mode="json"))
    data["deduction_rules"] = rules
    for deadline in data["deadlines"]:
        deadline.update(deadline_changes.get(deadline["code"], {}))
    config = rectification_config(parse_campaign(data))
    assert config.not_applied == ()
    return config.rules, config.deduction_rules


class Unit:
    """One unit's reports, liaisons and items, driven through the pure domain."""

    def __init__(self, rules: d.RectificationRules = RULES) -> None:
        self.rules = rules
        self.desk = Desk()
        self.reports: dict[str, d.ReportState] = {}
        self.liaisons_at: datetime | None = None
        self.score = s.ScoreState(UNIT)

    def file(self, kind: str, when: datetime, *, month: str = "2024-03") -> d.ReportState:
        actor = reporter(UNIT)
        if kind == "monthly_list":
            report = d.new_report(d.monthly_list_report_id(UNIT, month), e.ReportKind.MONTHLY_LIST,
                                  UNIT, month)
            events = d.decide_submit_monthly_list(
                report, c.SubmitMonthlyList(unit=UNIT, month=month), rows=(), actor=actor,
                now=when, rules=self.rules)
        elif kind == "work_plan":
            report = d.new_report(d.work_plan_report_id(UNIT), e.ReportKind.WORK_PLAN, UNIT)
            events = d.decide_submit_work_plan(report, c.SubmitWorkPlan(unit=UNIT, text="计划"),
                                               actor=actor, now=when, rules=self.rules)
        elif kind == "self_inspection_report":
            report = d.new_report(d.self_inspection_report_id(UNIT),
                                  e.ReportKind.SELF_INSPECTION_REPORT, UNIT)
            events = d.decide_submit_self_inspection_report(
                report, c.SubmitSelfInspectionReport(unit=UNIT, text="报告"), actor=actor,
                now=when, rules=self.rules)
        else:
            case_id = uuid.uuid4()
            report = d.new_report(d.typical_case_report_id(UNIT, case_id), e.ReportKind.TYPICAL_CASE,
                                  UNIT, str(case_id))
            events = d.decide_submit_typical_case(
                report, c.SubmitTypicalCase(unit=UNIT, case_id=case_id, title="案例", text="正文"),
                actor=actor, now=when, rules=self.rules)
        self.reports[report.report_id] = d.fold_report(report, events)
        return self.reports[report.report_id]

    def check(self, now: datetime, deduction_rules) -> list:
        """One deduction check, as ApplyDeductions runs it."""
        occurrences = s.triggers_due(UNIT, items=self.desk.items(), reports=self.reports.values(),
                                     now=now, deduction_rules=deduction_rules, rules=self.rules,
                                     liaisons_at=self.liaisons_at)
        events = s.decide_score_check(self.score, occurrences, deduction_rules,
                                      items=self.desk.items())
        for event in events:
            self.score = s.evolve_score(self.score, event)
        return events


def refs(events, kind=e.PointsDeducted) -> list[tuple[str, str]]:
    return sorted((x.rule_id, x.trigger_ref) for x in events if isinstance(x, kind))


# ------------------------------------------------------------------------------------------
# Submissions


def test_a_late_rule_tied_to_one_deadline_applies_to_it_and_the_general_rule_to_the_rest():
    rules, deduction_rules = config_with([
        {"id": "late_march", "trigger": "late_submission", "deadline": "monthly_list_2024_03",
         "points": "3", "description": "3月清单迟报扣3分"},
        {"id": "late_any", "trigger": "late_submission", "points": "1", "description": "迟报扣1分"},
    ])
    unit = Unit(rules)
    unit.liaisons_at = at(2024, 3, 5)
    unit.file("work_plan", at(2024, 3, 5))
    unit.file("monthly_list", at(2024, 3, 26), month="2024-03")
    unit.file("monthly_list", at(2024, 4, 26), month="2024-04")
    decided = unit.check(at(2024, 4, 30), deduction_rules)
    assert [(x.rule_id, x.trigger_ref, x.points) for x in decided] == [
        ("late_march", "echeng-monthly_list-2024-03", "3"),
        ("late_any", "echeng-monthly_list-2024-04", "1"),
    ]
    assert decided[0].deadline == "monthly_list_2024_03" and decided[0].trigger == "late_submission"


@pytest.mark.parametrize("deadline", ["liaisons", "work_plan", "monthly_list_2024_04",
                                      "self_inspection_report", "typical_case"])
def test_a_missing_submission_rule_applies_to_any_deadline_a_unit_files_by(deadline):
    rules, deduction_rules = config_with([
        {"id": "missing", "trigger": "missing_submission", "deadline": deadline, "points": "2",
         "description": "未报扣2分"}])
    unit = Unit(rules)
    due = next(x for x in rules.submissions if x.code == deadline).due_on
    assert unit.check(rules.due_at(due), deduction_rules) == []       # the due second: on time
    [missing] = unit.check(at(2024, 6, 1), deduction_rules)
    assert (missing.rule_id, missing.deadline, missing.points) == ("missing", deadline, "2")
    assert missing.reason.startswith("未报扣2分：") and "未报送" in missing.reason


def test_a_deadline_asking_for_two_typical_cases_is_not_met_by_one():
    rules, deduction_rules = config_with(
        [{"id": "cases", "trigger": "missing_submission", "deadline": "typical_case", "points": "2",
          "description": "典型案例不足扣2分"}],
        typical_case={"min_count": 2})
    unit = Unit(rules)
    unit.file("typical_case", at(2024, 5, 20))
    [short] = unit.check(at(2024, 6, 1), deduction_rules)
    assert short.reason == "典型案例不足扣2分：报送典型案例或经验材料截至2024年5月31日报送1份，少于要求的2份"
    two = Unit(rules)
    two.file("typical_case", at(2024, 5, 20))
    two.file("typical_case", at(2024, 5, 30))
    assert two.check(at(2024, 6, 1), deduction_rules) == []


def test_the_work_plan_is_submittable_and_a_late_one_is_deducted_by_the_campaign_file():
    unit = Unit()
    plan = unit.file("work_plan", at(2024, 3, 7, 9))
    assert (plan.report_id, plan.kind, plan.late) == ("echeng-work_plan", e.ReportKind.WORK_PLAN, True)
    assert plan.due == at(2024, 3, 6, 23, 59, 59)
    unit.liaisons_at = at(2024, 3, 5)
    decided = unit.check(at(2024, 3, 8), CONFIG.deduction_rules)
    assert refs(decided) == [("late_submission", "echeng-work_plan")]
    assert decided[0].reason == (
        "每迟报(或逾期未报)一项材料(联络员信息、工作计划、月度问题清单、自查报告)扣1分："
        "上报工作计划于2024年3月7日 09:00报送，晚于报送期限2024年3月6日")
    with pytest.raises(IllegalTransitionError):                      # filed once (unless returned)
        d.decide_submit_work_plan(plan, c.SubmitWorkPlan(unit=UNIT, text="再报"),
                                  actor=reporter(UNIT), now=at(2024, 3, 8), rules=RULES)


def test_liaisons_filed_with_the_registry_late_are_deducted_and_on_time_ones_not():
    unit = Unit()
    unit.file("work_plan", at(2024, 3, 5))
    unit.liaisons_at = at(2024, 3, 6, 23, 59, 59)
    assert unit.check(at(2024, 3, 8), CONFIG.deduction_rules) == []
    late = Unit()
    late.file("work_plan", at(2024, 3, 5))
    late.liaisons_at = at(2024, 3, 7)
    assert refs(late.check(at(2024, 3, 8), CONFIG.deduction_rules)) == [
        ("late_submission", "echeng-liaisons@2024-03-06")]


def test_a_deduction_for_liaisons_the_view_had_not_seen_yet_is_refunded_when_they_show_up_on_time():
    unit = Unit()
    unit.file("work_plan", at(2024, 3, 5))
    [deducted] = unit.check(at(2024, 3, 7), CONFIG.deduction_rules)      # the view lagged
    unit.liaisons_at = at(2024, 3, 6, 18)                                # filed on time after all
    [refund] = unit.check(at(2024, 3, 7, 0, 1), CONFIG.deduction_rules)
    assert isinstance(refund, e.PointsRefunded)
    assert (refund.trigger_ref, refund.points) == (deducted.trigger_ref, deducted.points)
    assert refund.deduction_event_id == s.deduction_event_id(deducted)
    assert unit.score.deducted == 0 and unit.score.deductions == (deducted,)  # never an edit
    assert unit.check(at(2024, 3, 8), CONFIG.deduction_rules) == []           # once only


# ------------------------------------------------------------------------------------------
# Refunds after an approved extension


def overdue_item(unit: Unit) -> uuid.UUID:
    pid = unit.desk.register(reporter(UNIT), at(2024, 3, 10), deadline=date(2024, 5, 7))
    unit.desk.start(pid, reporter(UNIT), at(2024, 3, 11))
    return pid


def test_an_extension_approved_after_the_open_at_deadline_deduction_refunds_it():
    unit = Unit()
    pid = overdue_item(unit)
    rules = [r for r in CONFIG.deduction_rules if r.trigger is s.Trigger.ITEM_OPEN_AT]
    [deducted] = unit.check(at(2024, 5, 8), rules)
    assert deducted.reason == ("2024年5月7日仍未销号的问题,每项扣0.5分："
                               "序号1（凤凰街道幸福食堂1(示例)）截至2024年5月7日仍未销号")
    assert deducted.problem_id == pid
    unit.desk.request_extension(pid, reporter(UNIT), at(2024, 5, 6), new_deadline=date(2024, 5, 20))
    unit.desk.decide_extension(pid, reviewer(UNIT), at(2024, 5, 9))
    [refund] = unit.check(at(2024, 5, 9, 12), rules)
    assert isinstance(refund, e.PointsRefunded) and refund.points == "0.5"
    assert refund.reason == "序号1（凤凰街道幸福食堂1(示例)）的整改限期经批准延至2024年5月20日，退还该项扣分"
    assert unit.score.deducted == Decimal(0)
    assert unit.check(at(2024, 6, 1), rules) == []      # the extension spares it for good


def test_a_rejected_extension_refunds_nothing():
    unit = Unit()
    pid = overdue_item(unit)
    rules = [r for r in CONFIG.deduction_rules if r.trigger is s.Trigger.ITEM_OPEN_AT]
    unit.check(at(2024, 5, 8), rules)
    unit.desk.request_extension(pid, reporter(UNIT), at(2024, 5, 8), new_deadline=date(2024, 5, 20))
    unit.desk.decide_extension(pid, city_admin(), at(2024, 5, 9), approved=False)
    assert unit.check(at(2024, 5, 10), rules) == []
    assert unit.score.deducted == Decimal("0.5")


def test_an_overdue_deduction_is_refunded_by_an_extension_and_overdue_again_is_deducted_anew():
    unit = Unit()
    pid = overdue_item(unit)
    rules = s.parse_deduction_rules([{"id": "overdue", "points": "0.2", "trigger": "item_overdue",
                                      "description": "逾期"}])
    [first] = unit.check(at(2024, 5, 8), rules)
    unit.desk.request_extension(pid, reporter(UNIT), at(2024, 5, 8), new_deadline=date(2024, 5, 20))
    unit.desk.decide_extension(pid, reviewer(UNIT), at(2024, 5, 9))
    [refund] = unit.check(at(2024, 5, 10), rules)
    assert isinstance(refund, e.PointsRefunded) and refund.trigger_ref == first.trigger_ref
    [again] = unit.check(at(2024, 5, 21), rules)
    assert again.trigger_ref == f"{pid}@overdue@2024-05-20" and again.reason.endswith(
        "超过整改限期2024年5月20日未销号")
    assert unit.score.deducted == Decimal("0.2")


def test_discretionary_deductions_and_rules_no_longer_listed_are_never_refunded():
    unit = Unit()
    [discretionary] = s.decide_discretionary_deduction(
        unit.score, c.DeductPoints(unit=UNIT, deduction_id=uuid.uuid4(), points="1", reason="滞后"),
        actor=city_admin(), now=at(2024, 5, 8))
    unit.score = s.evolve_score(unit.score, discretionary)
    old_rule = e.PointsDeducted(unit=UNIT, points="1", rule_id="a_rule_since_removed",
                                trigger_ref="x", reason="旧规则", decided_by="system")
    unit.score = s.evolve_score(unit.score, old_rule)
    assert s.decide_refunds(unit.score, [], CONFIG.deduction_rules) == []


def test_a_refund_frees_room_under_the_cap():
    unit = Unit()
    rules = s.parse_deduction_rules([{"id": "open", "points": "1", "trigger": "item_open_at",
                                      "date": "2024-05-07", "max_points": "1"}])
    first, second = overdue_item(unit), overdue_item(unit)
    [deducted] = unit.check(at(2024, 5, 8), rules)
    assert deducted.problem_id == first
    unit.desk.request_extension(first, reporter(UNIT), at(2024, 5, 8), new_deadline=date(2024, 5, 20))
    unit.desk.decide_extension(first, reviewer(UNIT), at(2024, 5, 9))
    refund, now_second = unit.check(at(2024, 5, 10), rules)
    assert isinstance(refund, e.PointsRefunded) and now_second.problem_id == second
    assert unit.score.deducted == Decimal(1)


# ------------------------------------------------------------------------------------------
# 销号率 and the board


def test_the_closure_rate_is_counts_and_a_percentage_never_a_reduced_fraction():
    rate = s.ClosureRate(closed=0, counted=5)
    assert (rate.text, rate.percent) == ("0/5（0.0%）", Decimal("0.0"))
    assert s.ClosureRate(2, 3).text == "2/3（66.7%）"
    assert s.ClosureRate(0, 0).text == "无问题" and s.ClosureRate(0, 0).percent is None


def test_every_deduction_reason_is_chinese():
    unit = Unit()
    pid = overdue_item(unit)
    unit.desk.request(pid, reporter(UNIT), at(2024, 4, 1))
    unit.desk.verify(pid, reviewer(UNIT), at(2024, 4, 2))
    unit.desk.reopen(pid, reporter(UNIT), at(2024, 4, 3))
    decided = unit.check(at(2024, 6, 1), CONFIG.deduction_rules)
    assert len(decided) == 8  # 附件1, plan, 2 lists, report, case, the successor open at 05-07, 反弹
    for event in decided:
        assert not any(word in event.reason for word in ("submitted", "rebounded", "still open",
                                                         "not ", "after", "echeng"))
        assert "：" in event.reason
