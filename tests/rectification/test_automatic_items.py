"""Items opened by other services' events: a registry ledger entry, an inspection finding."""
from __future__ import annotations

from datetime import date

import pytest

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from shared.errors import ForbiddenError, NotFoundError
from shared.messages import SYSTEM_ACTOR

from .support import RULES, Desk, at, content_hash, inspector, project, reporter, reviewer

pytestmark = pytest.mark.unit

UNIT = "huarong"
REF = project(UNIT)
LEDGER_ENTRY = "ledger-entry-1"


def deliver_ledger_entry(desk: Desk, ledger_entry_id: str, reason: str, now, details=()) -> list[e.Event]:
    """What the on-registry reaction's command (OpenLedgerItem) decides for a LedgerEntryAdded."""
    cmd = c.OpenLedgerItem(entry_id=ledger_entry_id, project_id=REF.project_id,
                           project_name=REF.name, project_year=REF.year, unit=UNIT,
                           township=REF.township, reason=reason, reason_details=details)
    pid = d.ledger_problem_id(ledger_entry_id)
    return desk.apply(d.decide_open_ledger_item(
        desk.problem(pid), desk.sequence(UNIT), cmd, ledger_items=desk.items(),
        actor=SYSTEM_ACTOR, now=now, rules=RULES))


def test_a_ledger_entry_opens_a_ledger_item_due_on_the_campaign_deadline():
    desk = Desk()
    events = deliver_ledger_entry(desk, LEDGER_ENTRY, "underperforming", at(2024, 3, 12),
                                  details=("fewer_than_min_services", "no_meal_assistance"))
    registered = events[-1]
    assert isinstance(registered, e.ProblemRegistered)
    assert registered.problem_id == d.ledger_problem_id(LEDGER_ENTRY)
    assert registered.source is e.ProblemSource.LEDGER
    assert registered.source_ref == LEDGER_ENTRY and registered.ledger_reason == "underperforming"
    assert registered.deadline == date(2024, 5, 7)
    # the registry's own words for its reason codes (services/registry/events.py: describe_reason)
    assert registered.description == (
        "列入台账：项目运营不佳,作用发挥不够（专业养老服务不足3项；未开展助餐服务）")
    assert registered.unit == UNIT and registered.seq_no == 1


def test_a_redelivered_ledger_entry_opens_nothing_more():
    desk = Desk()
    deliver_ledger_entry(desk, LEDGER_ENTRY, "not_operating", at(2024, 3, 12))
    # Even if the "already open" check is bypassed, the deterministic id catches it.
    cmd = d.registration_for_ledger_entry(ledger_entry_id=LEDGER_ENTRY, project_id=REF.project_id,
                                          reason="not_operating", open_ledger_items=set(),
                                          now=at(2024, 3, 13), rules=RULES)
    assert d.decide_register_problem(desk.problem(cmd.problem_id), desk.sequence(UNIT), cmd,
                                     project=REF, actor=SYSTEM_ACTOR, now=at(2024, 3, 13),
                                     rules=RULES) == []
    assert deliver_ledger_entry(desk, LEDGER_ENTRY, "not_operating", at(2024, 3, 13)) == []
    assert len(desk.problems) == 1


def test_a_second_entry_for_the_same_project_and_reason_waits_until_the_first_is_closed():
    desk = Desk()
    deliver_ledger_entry(desk, LEDGER_ENTRY, "underperforming", at(2024, 3, 12))
    second = "ledger-entry-2"
    assert deliver_ledger_entry(desk, second, "underperforming", at(2024, 3, 20)) == []
    assert deliver_ledger_entry(desk, "ledger-entry-3", "not_operating", at(2024, 3, 20)) != []
    first_id = d.ledger_problem_id(LEDGER_ENTRY)
    desk.start(first_id, reporter(UNIT), at(2024, 3, 21))
    desk.request(first_id, reporter(UNIT), at(2024, 3, 22))
    desk.verify(first_id, reviewer(UNIT), at(2024, 3, 23))
    assert deliver_ledger_entry(desk, second, "underperforming", at(2024, 4, 2)) != []
    assert len(desk.problems) == 3


def test_a_ledger_entry_after_the_campaign_deadline_is_immediate():
    desk = Desk()
    [_, registered] = deliver_ledger_entry(desk, LEDGER_ENTRY, "not_operating", at(2024, 5, 9))
    assert registered.deadline_kind is e.DeadlineKind.IMMEDIATE
    assert registered.deadline == date(2024, 5, 16)


def test_an_automatic_ledger_item_starts_without_a_responsible_person_and_gets_one():
    desk = Desk()
    deliver_ledger_entry(desk, LEDGER_ENTRY, "not_operating", at(2024, 3, 12))
    pid = d.ledger_problem_id(LEDGER_ENTRY)
    assert desk.problem(pid).responsible_person == ""
    desk.apply(d.decide_start_rectification(
        desk.problem(pid), c.StartRectification(problem_id=pid, plan="引进运营机构",
                                                responsible_person="王某(示例)"),
        actor=reporter(UNIT), now=at(2024, 3, 13)))
    assert desk.problem(pid).responsible_person == "王某(示例)"


def register_finding(desk: Desk, finding_id: str, deadline, now) -> list[e.Event]:
    """What the on-inspection reaction's command (OpenFindingItem) decides for a finding."""
    cmd = c.OpenFindingItem(finding_id=finding_id, project_id=REF.project_id, unit=UNIT,
                            project_name=REF.name, township=REF.township, project_year=REF.year,
                            text="助餐服务未正常开展", deadline=deadline)
    pid = d.finding_problem_id(finding_id)
    return desk.apply(d.decide_open_finding_item(
        desk.problem(pid), desk.sequence(UNIT), cmd, project=REF, actor=SYSTEM_ACTOR, now=now,
        rules=RULES))


def test_a_finding_opens_a_city_found_item_once():
    desk = Desk()
    events = register_finding(desk, "finding-7", date(2024, 5, 30), at(2024, 5, 10))
    registered = events[-1]
    assert registered.source is e.ProblemSource.CITY and registered.source_ref == "finding-7"
    assert registered.problem_id == d.finding_problem_id("finding-7")
    assert registered.deadline == date(2024, 5, 30)
    assert register_finding(desk, "finding-7", date(2024, 5, 30), at(2024, 5, 10)) == []
    assert len(desk.problems) == 1
    # City-found: the unit's reviewer cannot close it, an inspector can.
    pid = registered.problem_id
    desk.start(pid, reporter(UNIT), at(2024, 5, 11))
    desk.request(pid, reporter(UNIT), at(2024, 5, 12), hashes=(content_hash("after.jpg"),))
    with pytest.raises(ForbiddenError):
        desk.verify(pid, reviewer(UNIT), at(2024, 5, 13))
    desk.verify(pid, inspector(), at(2024, 5, 13))
    assert desk.problem(pid).status is d.ProblemStatus.CLOSED


def test_a_finding_without_a_deadline_or_with_a_past_one_is_immediate():
    desk = Desk()
    [_, no_deadline] = register_finding(desk, "f-1", None, at(2024, 5, 10))
    [_, past] = register_finding(desk, "f-2", date(2024, 5, 1), at(2024, 5, 10))
    for registered in (no_deadline, past):
        assert registered.deadline_kind is e.DeadlineKind.IMMEDIATE
        assert registered.deadline == date(2024, 5, 17)


def test_a_finding_must_agree_with_the_projects_unit_and_project_must_be_known():
    with pytest.raises(d.InvalidCommandError):
        d.registration_for_finding(finding_id="f", project_id=REF.project_id, unit="echeng",
                                   text="x", deadline=None, project=REF, now=at(2024, 5, 10),
                                   rules=RULES)
    with pytest.raises(NotFoundError):
        d.registration_for_finding(finding_id="f", project_id="p-unknown", unit=UNIT, text="x",
                                   deadline=None, project=None, now=at(2024, 5, 10), rules=RULES)
