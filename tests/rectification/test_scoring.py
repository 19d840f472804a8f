"""Progress per unit, traffic lights, deductions as events, and the score board (hand-computed)."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import scoring as s
from services.rectification.config import rectification_config
from services.rectification.scoring import TrafficLight as L
from shared.campaign import parse_campaign
from shared.errors import ForbiddenError

from .support import CAMPAIGN, CONFIG, RULES, UNITS, Desk, at, city_admin, inspector, reporter, reviewer

pytestmark = pytest.mark.unit

NOW = at(2024, 6, 1)
# The campaign file's supervision settings: its working days, dates and traffic-light window.
SUPERVISION = dict(is_working_day=CAMPAIGN.is_working_day, rules=RULES,
                   yellow_working_days=CONFIG.yellow_working_days)
# The hand-computed example's own scale (the campaign file's is checked in test_api_reports.py).
HAND_COMPUTED_RULES = s.parse_deduction_rules([
    {"id": "late_report", "points": "2", "trigger": "late_submission", "description": "报表逾期或未报"},
    {"id": "open_at_deadline", "points": "1", "trigger": "item_open_at", "date": "2024-05-07",
     "description": "5月7日仍未整改到位的问题"},
    {"id": "missing_typical_case", "points": "3", "trigger": "missing_submission",
     "deadline": "typical_case", "description": "5月31日前未报送典型案例"},
])


class Campaign:
    """Five units' items and reports, driven through the pure domain."""

    def __init__(self) -> None:
        self.desk = Desk()
        self.reports: dict[str, d.ReportState] = {}
        self.liaisons: dict[str, datetime] = {}     # when each unit's 附件1 was complete

    def item(self, unit: str, registered, *, closed=None, withdrawn=None) -> uuid.UUID:
        pid = self.desk.register(reporter(unit), registered, unit=unit)
        if withdrawn:
            self.desk.withdraw(pid, reviewer(unit), withdrawn)
            return pid
        self.desk.start(pid, reporter(unit), registered)
        if closed:
            self.desk.request(pid, reporter(unit), closed)
            self.desk.verify(pid, reviewer(unit), closed)
        return pid

    def monthly(self, unit: str, month: str, when) -> None:
        report = d.new_report(d.monthly_list_report_id(unit, month), e.ReportKind.MONTHLY_LIST, unit, month)
        events = d.decide_submit_monthly_list(
            report, c.SubmitMonthlyList(unit=unit, month=month),
            rows=d.problem_list_rows(self.desk.items(), unit=unit), actor=reporter(unit), now=when,
            rules=RULES)
        self.reports[report.report_id] = d.fold_report(report, events)

    def self_inspection(self, unit: str, when) -> None:
        report = d.new_report(d.self_inspection_report_id(unit), e.ReportKind.SELF_INSPECTION_REPORT, unit)
        events = d.decide_submit_self_inspection_report(
            report, c.SubmitSelfInspectionReport(unit=unit, text="自查报告"), actor=reporter(unit),
            now=when, rules=RULES)
        self.reports[report.report_id] = d.fold_report(report, events)

    def work_plan(self, unit: str, when) -> None:
        report = d.new_report(d.work_plan_report_id(unit), e.ReportKind.WORK_PLAN, unit)
        events = d.decide_submit_work_plan(
            report, c.SubmitWorkPlan(unit=unit, text="工作计划"), actor=reporter(unit), now=when,
            rules=RULES)
        self.reports[report.report_id] = d.fold_report(report, events)

    def typical_case(self, unit: str, when) -> None:
        case_id = uuid.uuid4()
        report = d.new_report(d.typical_case_report_id(unit, case_id), e.ReportKind.TYPICAL_CASE, unit,
                              str(case_id))
        events = d.decide_submit_typical_case(
            report, c.SubmitTypicalCase(unit=unit, case_id=case_id, title="案例", text="正文"),
            actor=reporter(unit), now=when, rules=RULES)
        self.reports[report.report_id] = d.fold_report(report, events)

    def all_reports(self, unit: str, *, skip: tuple[str, ...] = (), monthly_03=at(2024, 3, 20)) -> None:
        if "liaisons" not in skip:
            self.liaisons[unit] = at(2024, 3, 5)
        if "wp" not in skip:
            self.work_plan(unit, at(2024, 3, 5))
        if "03" not in skip:
            self.monthly(unit, "2024-03", monthly_03)
        if "04" not in skip:
            self.monthly(unit, "2024-04", at(2024, 4, 20))
        if "si" not in skip:
            self.self_inspection(unit, at(2024, 5, 6))
        if "tc" not in skip:
            self.typical_case(unit, at(2024, 5, 20))


def hand_computed_campaign() -> tuple[Campaign, dict[str, uuid.UUID]]:
    """echeng: 3 closed + 1 withdrawn, all on time                       -> 100
    huarong: 2 closed, 1 still open at 05-07; March list late         -> 100 - 2 - 1 = 97
    liangzihu: 1 closed 05-06, 1 closed 05-09 (open at 05-07); no case -> 100 - 1 - 3 = 96
    gedian: closed, rebounded, successor closed; April list missing; discretionary 2
                                                                      -> 100 - 2 - 2 = 96
    linkong: 1 closed; discretionary 3                                -> 97"""
    camp, ids = Campaign(), {}
    for _ in range(3):
        camp.item("echeng", at(2024, 3, 10), closed=at(2024, 4, 10))
    camp.item("echeng", at(2024, 3, 10), withdrawn=at(2024, 3, 11))
    camp.all_reports("echeng")

    camp.item("huarong", at(2024, 3, 10), closed=at(2024, 4, 10))
    camp.item("huarong", at(2024, 3, 10), closed=at(2024, 4, 10))
    ids["huarong_open"] = camp.item("huarong", at(2024, 3, 10))
    camp.all_reports("huarong", monthly_03=at(2024, 3, 26, 9))

    camp.item("liangzihu", at(2024, 3, 10), closed=at(2024, 5, 6))
    ids["liangzihu_late"] = camp.item("liangzihu", at(2024, 3, 10), closed=at(2024, 5, 9))
    camp.all_reports("liangzihu", skip=("tc",))

    original = camp.item("gedian", at(2024, 3, 10), closed=at(2024, 4, 1))
    successor = camp.desk.reopen(original, inspector(), at(2024, 4, 20))
    camp.desk.start(successor, reporter("gedian"), at(2024, 4, 21))
    camp.desk.request(successor, reporter("gedian"), at(2024, 5, 6))
    camp.desk.verify(successor, inspector(2), at(2024, 5, 6))  # the city found it again: inspector verifies
    camp.all_reports("gedian", skip=("04",))

    camp.item("linkong", at(2024, 3, 10), closed=at(2024, 4, 10))
    camp.all_reports("linkong")
    return camp, ids


def run_deductions(camp: Campaign, scores: dict[str, s.ScoreState], now=NOW) -> list[e.PointsDeducted]:
    decided = []
    for unit in UNITS:
        occurrences = s.triggers_due(unit, items=camp.desk.items(), reports=camp.reports.values(),
                                     now=now, deduction_rules=HAND_COMPUTED_RULES, rules=RULES,
                                     liaisons_at=camp.liaisons.get(unit))
        events = s.decide_deductions(scores[unit], occurrences, HAND_COMPUTED_RULES)
        for event in events:
            scores[unit] = s.evolve_score(scores[unit], event)
        decided += events
    return decided


def discretionary(scores, unit: str, points: str, deduction_id: uuid.UUID | None = None):
    cmd = c.DeductPoints(unit=unit, deduction_id=deduction_id or uuid.uuid4(), points=points,
                         reason="整改工作进度滞后(示例)")
    events = s.decide_discretionary_deduction(scores[unit], cmd, actor=city_admin(), now=NOW)
    for event in events:
        scores[unit] = s.evolve_score(scores[unit], event)
    return events


def test_the_score_board_matches_the_hand_computed_example():
    camp, ids = hand_computed_campaign()
    scores = {unit: s.ScoreState(unit) for unit in UNITS}
    decided = run_deductions(camp, scores)
    discretionary(scores, "gedian", "2")
    discretionary(scores, "linkong", "3")

    assert sorted((ev.unit, ev.rule_id, ev.trigger_ref, ev.points) for ev in decided) == sorted([
        ("huarong", "late_report", "huarong-monthly_list-2024-03", "2"),
        ("huarong", "open_at_deadline", f"{ids['huarong_open']}@2024-05-07", "1"),
        ("liangzihu", "open_at_deadline", f"{ids['liangzihu_late']}@2024-05-07", "1"),
        ("liangzihu", "missing_typical_case", "liangzihu-typical_case@2024-05-31", "3"),
        ("gedian", "late_report", "gedian-monthly_list-2024-04", "2"),
    ])
    progress = {unit: s.unit_progress(unit, camp.desk.items(), camp.reports.values(), now=NOW,
                                      liaisons_at=camp.liaisons.get(unit), **SUPERVISION)
                for unit in UNITS}
    board = s.score_board(UNITS, scores, progress)
    assert [(row.rank, row.unit, row.score, row.closure_rate) for row in board] == [
        (1, "echeng", Decimal(100), Fraction(1)),
        (2, "linkong", Decimal(97), Fraction(1)),
        (3, "huarong", Decimal(97), Fraction(2, 3)),
        (4, "liangzihu", Decimal(96), Fraction(1)),
        (5, "gedian", Decimal(96), Fraction(1, 2)),
    ]


def test_progress_counts_per_unit_match_the_hand_computed_example():
    camp, _ = hand_computed_campaign()
    progress = {unit: s.unit_progress(unit, camp.desk.items(), camp.reports.values(), now=NOW,
                                      liaisons_at=camp.liaisons.get(unit), **SUPERVISION)
                for unit in UNITS}
    assert progress["echeng"] == s.UnitProgress(
        unit="echeng", registered=4, withdrawn=1, open=0, closed=3, overdue=0, reopened=0,
        closure=s.ClosureRate(3, 3), late_reports=0, missing_reports=0, light=L.GREEN)
    assert progress["huarong"] == s.UnitProgress(
        unit="huarong", registered=3, withdrawn=0, open=1, closed=2, overdue=1, reopened=0,
        closure=s.ClosureRate(2, 3), late_reports=1, missing_reports=0, light=L.RED)
    assert progress["gedian"] == s.UnitProgress(
        unit="gedian", registered=2, withdrawn=0, open=0, closed=1, overdue=0, reopened=1,
        closure=s.ClosureRate(1, 2), late_reports=0, missing_reports=1, light=L.RED)
    assert progress["liangzihu"].missing_reports == 1 and progress["liangzihu"].light is L.RED
    assert progress["linkong"].light is L.GREEN


def test_the_same_trigger_never_deducts_twice():
    camp, _ = hand_computed_campaign()
    scores = {unit: s.ScoreState(unit) for unit in UNITS}
    first = run_deductions(camp, scores)
    assert first
    assert run_deductions(camp, scores) == []
    assert run_deductions(camp, scores, now=at(2024, 7, 1)) == []
    assert scores["huarong"].deducted == Decimal(3)


def test_a_missing_list_then_submitted_late_is_deducted_once():
    camp = Campaign()
    camp.work_plan("echeng", at(2024, 3, 5))
    score = s.ScoreState("echeng")
    rules = HAND_COMPUTED_RULES
    missing = s.triggers_due("echeng", items=[], reports=camp.reports.values(), now=at(2024, 3, 26),
                             deduction_rules=rules, rules=RULES, liaisons_at=at(2024, 3, 5))
    [deducted] = s.decide_deductions(score, missing, rules)
    assert deducted.reason == "报表逾期或未报：3月问题整改清单(附件2)截至报送期限2024年3月25日未报送"
    score = s.evolve_score(score, deducted)
    camp.monthly("echeng", "2024-03", at(2024, 3, 27))
    late = s.triggers_due("echeng", items=[], reports=camp.reports.values(), now=at(2024, 3, 27),
                          deduction_rules=rules, rules=RULES, liaisons_at=at(2024, 3, 5))
    assert [o.ref for o in late] == [deducted.trigger_ref]
    assert late[0].reason == "3月问题整改清单(附件2)于2024年3月27日 10:00报送，晚于报送期限2024年3月25日"
    assert s.decide_deductions(score, late, rules) == []


def test_an_open_item_is_only_judged_after_the_rules_day_has_ended():
    camp = Campaign()
    camp.item("echeng", at(2024, 3, 10))
    rules = s.parse_deduction_rules([{"id": "open", "points": "1", "trigger": "item_open_at",
                                      "date": "2024-05-07"}])
    before = s.triggers_due("echeng", items=camp.desk.items(), reports=[], now=at(2024, 5, 7, 23, 59, 59),
                            deduction_rules=rules, rules=RULES)
    after = s.triggers_due("echeng", items=camp.desk.items(), reports=[], now=at(2024, 5, 8, 0, 0, 0),
                           deduction_rules=rules, rules=RULES)
    assert before == []
    assert [o.trigger for o in after] == [s.Trigger.ITEM_OPEN_AT]


def test_deduction_events_get_stable_ids():
    event = e.PointsDeducted(unit="echeng", points="2", rule_id="late_submission",
                             trigger_ref="echeng-monthly_list-2024-03", reason="x", decided_by="system")
    assert s.deduction_event_id(event) == s.deduction_event_id(event.model_copy(update={"reason": "y"}))


def test_discretionary_deductions_are_city_admins_with_a_reason_and_idempotent():
    scores = {"echeng": s.ScoreState("echeng")}
    deduction_id = uuid.uuid4()
    [event] = discretionary(scores, "echeng", "1.5", deduction_id)
    assert event.discretionary and event.rule_id == "discretionary" and event.points == "1.5"
    assert discretionary(scores, "echeng", "1.5", deduction_id) == []
    assert scores["echeng"].deducted == Decimal("1.5")
    cmd = c.DeductPoints(unit="echeng", deduction_id=uuid.uuid4(), points="1", reason="r")
    for actor in (inspector(), reviewer("echeng")):
        with pytest.raises(ForbiddenError):
            s.decide_discretionary_deduction(scores["echeng"], cmd, actor=actor, now=NOW)
    with pytest.raises(d.InvalidCommandError):
        s.decide_discretionary_deduction(scores["echeng"], cmd.model_copy(update={"points": "0"}),
                                         actor=city_admin(), now=NOW)
    with pytest.raises(ValueError):
        c.DeductPoints(unit="echeng", deduction_id=uuid.uuid4(), points="1", reason="  ")


def test_deduction_rules_are_data_and_are_checked():
    [rule] = s.parse_deduction_rules([{"id": "late", "points": 2, "trigger": "late_submission"}])
    assert rule.points == Decimal(2) and rule.trigger is s.Trigger.LATE_SUBMISSION
    bad = [
        [{"id": "x", "points": 1.5, "trigger": "late_submission"}],          # a float
        [{"id": "x", "points": "-1", "trigger": "late_submission"}],
        [{"id": "x", "points": "1", "trigger": "item_open_at"}],         # no date
        [{"id": "x", "points": "1", "trigger": "missing_submission"}],   # no deadline
        [{"id": "x", "points": "1", "trigger": "nonsense"}],
        [{"id": "x", "points": "1", "trigger": "late_submission", "colour": "red"}],
        [{"id": "x", "points": "1", "trigger": "late_submission"}] * 2,
        [{"id": "discretionary", "points": "1", "trigger": "late_submission"}],
    ]
    for data in bad:
        with pytest.raises(ValueError):
            s.parse_deduction_rules(data)


def test_ties_are_broken_by_closure_rate_then_unit_code():
    scores = {u: s.ScoreState(u) for u in ("b", "a", "c")}
    board = s.score_board(["c", "b", "a"], scores)
    assert [row.unit for row in board] == ["a", "b", "c"]
    assert [row.rank for row in board] == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# Traffic lights and working days


@pytest.mark.parametrize(("today", "light"), [
    (at(2024, 4, 28), L.GREEN),    # working Sunday: Apr 28, 29, 30, May 6, 7 = 5 working days
    (at(2024, 4, 29), L.GREEN),    # 4 left
    (at(2024, 4, 30), L.YELLOW),   # Apr 30, May 6, May 7: the final 3
    (at(2024, 5, 3), L.YELLOW),    # holiday: May 6, 7 left
    (at(2024, 5, 7, 23, 59, 59), L.YELLOW),
    (at(2024, 5, 8, 0, 0, 0), L.RED),
])
def test_an_item_turns_yellow_in_its_final_three_working_days_and_red_after(today, light):
    camp = Campaign()
    pid = camp.item("echeng", at(2024, 3, 10))
    assert s.item_light(camp.desk.problem(pid), today, **SUPERVISION) is light


def test_the_calendar_knows_2024_holidays_and_swapped_working_days():
    is_working_day = CONFIG.is_working_day          # the campaign file's calendar, nothing else
    assert not is_working_day(date(2024, 4, 4))
    assert is_working_day(date(2024, 4, 7))       # Sunday worked
    assert not is_working_day(date(2024, 5, 3))
    assert is_working_day(date(2024, 5, 11))      # Saturday worked
    assert not is_working_day(date(2024, 3, 23))  # an ordinary Saturday
    data = CAMPAIGN.model_dump()
    data["calendar"] = {"holidays": [date(2024, 3, 21)], "make_up_working_days": []}
    custom = rectification_config(parse_campaign(data))
    assert not custom.is_working_day(date(2024, 3, 21))
    assert not custom.is_working_day(date(2024, 4, 7))


def test_a_unit_turns_yellow_before_a_report_is_due_and_green_once_it_is_in():
    camp = Campaign()
    camp.work_plan("echeng", at(2024, 3, 5))
    phase_1 = list(camp.reports.values())

    def light(reports, now):
        return s.unit_progress("echeng", [], reports, now=now, liaisons_at=at(2024, 3, 5),
                               **SUPERVISION).light

    assert light(phase_1, at(2024, 3, 20)) is L.GREEN  # 20,21,22,25
    assert light(phase_1, at(2024, 3, 21)) is L.YELLOW
    camp.monthly("echeng", "2024-03", at(2024, 3, 21))
    assert light(camp.reports.values(), at(2024, 3, 21)) is L.GREEN
    assert light(phase_1, at(2024, 3, 26)) is L.RED


def test_closure_rate_leaves_out_withdrawn_items_and_is_undefined_without_items():
    assert s.closure_rate(closed=3, registered=5, withdrawn=1) == Fraction(3, 4)
    assert s.closure_rate(closed=0, registered=2, withdrawn=2) is None
