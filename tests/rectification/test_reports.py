"""Unit reports: monthly lists (frozen snapshots), the self-inspection report, typical cases."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, time

import pytest

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification.domain import ReportStatus
from shared.errors import ForbiddenError, IllegalTransitionError, NotFoundError
from shared.messages import Actor, Role

from .support import AUDITOR, LEADER, RULES, Desk, at, city_admin, content_hash, reporter, reviewer

pytestmark = pytest.mark.unit

UNIT = "linkong"
REP, REV = reporter(UNIT), reviewer(UNIT)


def monthly(month: str = "2024-03") -> d.ReportState:
    return d.new_report(d.monthly_list_report_id(UNIT, month), e.ReportKind.MONTHLY_LIST, UNIT, month)


def submit_list(report: d.ReportState, desk: Desk, now, *, actor: Actor = REP,
                rules: d.RectificationRules = RULES) -> d.ReportState:
    rows = d.problem_list_rows(desk.items(), unit=UNIT)
    events = d.decide_submit_monthly_list(report, c.SubmitMonthlyList(unit=UNIT, month=report.period),
                                          rows=rows, actor=actor, now=now, rules=rules)
    return d.fold_report(report, events)


def review(report: d.ReportState, actor: Actor, now, approved: bool = True, comment: str = "") -> d.ReportState:
    events = d.decide_review_report(report, c.ReviewReport(report_id=report.report_id,
                                                          approved=approved, comment=comment),
                                    actor=actor, now=now)
    return d.fold_report(report, events)


def desk_with_items() -> Desk:
    desk = Desk()
    first = desk.register(REP, at(2024, 3, 8))
    second = desk.register(REP, at(2024, 3, 9))
    desk.register(reporter("echeng"), at(2024, 3, 9))  # another unit's item stays out
    desk.withdraw(second, REV, at(2024, 3, 10))
    desk.register(REP, at(2024, 3, 11), immediate=True)
    desk.start(first, REP, at(2024, 3, 12))
    return desk


def test_a_monthly_list_is_a_frozen_snapshot_of_the_units_items_by_seq_no():
    desk = desk_with_items()
    report = submit_list(monthly(), desk, at(2024, 3, 20))
    assert [row.seq_no for row in report.rows] == [1, 3]  # 2 was withdrawn; never renumbered
    assert [row.status for row in report.rows] == ["in_rectification", "registered"]
    assert report.status is ReportStatus.SUBMITTED and report.submitter == REP.name
    first_id = report.rows[0].problem_id
    desk.request(first_id, REP, at(2024, 3, 21))
    desk.verify(first_id, REV, at(2024, 3, 22))
    assert report.rows[0].status == "in_rectification", "the snapshot does not follow the live item"


@pytest.mark.parametrize(("now", "late"), [
    (at(2024, 3, 25, 23, 59, 59), False),
    (at(2024, 3, 26, 0, 0, 0), True),
])
def test_a_monthly_list_is_due_on_the_25th_at_23_59_59_local_and_accepted_when_late(now, late):
    report = submit_list(monthly(), Desk(), now)
    assert report.status is ReportStatus.SUBMITTED
    assert report.late is late
    assert report.due == at(2024, 3, 25, 23, 59, 59)


def test_the_monthly_due_day_and_time_are_configurable():
    rules = replace(RULES, monthly_list_due_dates=(("2024-03", date(2024, 3, 24)),),
                    due_time=time(17, 30))
    report = submit_list(monthly(), Desk(), at(2024, 3, 24, 18), rules=rules)
    assert report.late is True


def test_only_months_of_the_self_inspection_phase_have_a_list():
    with pytest.raises(d.InvalidCommandError):
        submit_list(monthly("2024-05"), Desk(), at(2024, 5, 20))
    with pytest.raises(d.InvalidCommandError):
        submit_list(monthly("2024-04"), Desk(), at(2024, 3, 30))  # not before the month


def test_a_list_is_reviewed_by_the_units_reviewer_not_its_submitter():
    report = submit_list(monthly(), Desk(), at(2024, 3, 20))
    same_person = Actor(id=REP.id, name=REP.name, role=Role.DISTRICT_REVIEWER, unit=UNIT)
    with pytest.raises(d.FourEyesError):
        review(report, same_person, at(2024, 3, 21))
    for wrong in (reporter(UNIT, 2), reviewer("echeng"), city_admin(), LEADER, AUDITOR):
        with pytest.raises(ForbiddenError):
            review(report, wrong, at(2024, 3, 21))
    reviewed = review(report, REV, at(2024, 3, 21))
    assert reviewed.status is ReportStatus.REVIEWED and reviewed.reviewer == REV.name
    with pytest.raises(IllegalTransitionError):
        review(reviewed, reviewer(UNIT, 2), at(2024, 3, 22))


def test_a_reviewer_sends_a_list_back_with_a_comment():
    report = submit_list(monthly(), Desk(), at(2024, 3, 20))
    with pytest.raises(d.InvalidCommandError):
        review(report, REV, at(2024, 3, 21), approved=False)
    returned = review(report, REV, at(2024, 3, 21), approved=False, comment="序号3缺责任人")
    assert returned.status is ReportStatus.RETURNED and returned.comments == ("序号3缺责任人",)


def test_only_the_units_reporter_submits():
    for wrong in (REV, reporter("echeng"), city_admin(), LEADER):
        with pytest.raises(ForbiddenError):
            submit_list(monthly(), Desk(), at(2024, 3, 20), actor=wrong)


def test_a_submitted_list_cannot_be_submitted_again_until_returned():
    report = submit_list(monthly(), Desk(), at(2024, 3, 20))
    with pytest.raises(IllegalTransitionError, match="submitted"):
        submit_list(report, Desk(), at(2024, 3, 21))


def test_the_city_returns_a_list_with_a_comment_and_the_unit_resubmits():
    report = review(submit_list(monthly(), Desk(), at(2024, 3, 20)), REV, at(2024, 3, 21))
    cmd = c.ReturnMonthlyList(unit=UNIT, month="2024-03", comment="请补充整改措施")
    with pytest.raises(ForbiddenError):
        d.decide_return_monthly_list(report, cmd, actor=inspector_like(), now=at(2024, 3, 27))
    [returned] = d.decide_return_monthly_list(report, cmd, actor=city_admin(), now=at(2024, 3, 27))
    assert isinstance(returned, e.MonthlyListReturned) and returned.comment == "请补充整改措施"
    report = d.evolve_report(report, returned)
    assert report.status is ReportStatus.RETURNED
    with pytest.raises(IllegalTransitionError):
        d.decide_return_monthly_list(report, cmd, actor=city_admin(), now=at(2024, 3, 27))
    report = submit_list(report, Desk(), at(2024, 3, 28))
    assert report.version == 2 and report.status is ReportStatus.SUBMITTED
    assert report.reviewer is None, "the new version needs its own review"
    assert report.late is False, "lateness is that of the first submission"


def inspector_like() -> Actor:
    return Actor(id="insp-9", name="检查员(示例)", role=Role.INSPECTOR)


def test_returning_a_list_that_was_never_submitted_is_not_found():
    cmd = c.ReturnMonthlyList(unit=UNIT, month="2024-03", comment="x")
    with pytest.raises(NotFoundError):
        d.decide_return_monthly_list(monthly(), cmd, actor=city_admin(), now=at(2024, 3, 27))


def test_the_self_inspection_report_is_due_on_may_7():
    report = d.new_report(d.self_inspection_report_id(UNIT), e.ReportKind.SELF_INSPECTION_REPORT, UNIT)
    cmd = c.SubmitSelfInspectionReport(unit=UNIT, text="自查报告正文", attachment_hashes=(content_hash("r"),))
    [on_time] = d.decide_submit_self_inspection_report(report, cmd, actor=REP, now=at(2024, 5, 7, 18),
                                                        rules=RULES)
    [late] = d.decide_submit_self_inspection_report(report, cmd, actor=REP, now=at(2024, 5, 8, 9),
                                                     rules=RULES)
    assert (on_time.late, late.late) == (False, True)
    assert on_time.due == at(2024, 5, 7, 23, 59, 59)
    reviewed = review(d.evolve_report(report, on_time), REV, at(2024, 5, 8))
    assert reviewed.status is ReportStatus.REVIEWED and reviewed.text == "自查报告正文"


def test_typical_cases_are_submitted_one_per_report_and_due_on_may_31():
    case_id = uuid.UUID(int=42)
    report = d.new_report(d.typical_case_report_id(UNIT, case_id), e.ReportKind.TYPICAL_CASE, UNIT,
                          str(case_id))
    cmd = c.SubmitTypicalCase(unit=UNIT, case_id=case_id, title="引入专业运营的经验(示例)",
                              text="正文", attachment_hashes=(content_hash("c"),))
    [submitted] = d.decide_submit_typical_case(report, cmd, actor=REP, now=at(2024, 6, 1),
                                               rules=RULES)
    assert submitted.late is True and submitted.title == cmd.title
    assert d.stream_id_for(submitted) == f"report-{UNIT}-typical_case-{case_id}"
    with pytest.raises(ValueError):
        d.decide_submit_typical_case(replace(report, report_id="other"), cmd, actor=REP,
                                     now=at(2024, 5, 1), rules=RULES)
