"""The 销号 life cycle of a problem item: every legal and illegal transition, four-eyes, scoping."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import pytest

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification.domain import ProblemStatus as S
from shared.errors import ForbiddenError, IllegalTransitionError, NotFoundError

from .support import (AUDITOR, LEADER, RULES, Desk, at, city_admin, content_hash, inspector, project,
                      reporter, reviewer)

pytestmark = pytest.mark.unit

UNIT = "echeng"
REP, REV, REV2 = reporter(UNIT), reviewer(UNIT), reviewer(UNIT, 2)
NOW = at(2024, 3, 10)


def item_in(status: S) -> tuple[Desk, uuid.UUID]:
    """A self-found item of echeng brought to `status` by the usual officials."""
    desk = Desk()
    pid = desk.register(REP, NOW)
    path = {
        S.REGISTERED: [],
        S.IN_RECTIFICATION: ["start"],
        S.CLOSE_OUT_REQUESTED: ["start", "request"],
        S.CLOSED: ["start", "request", "verify"],
        S.REOPENED: ["start", "request", "verify", "reopen"],
        S.WITHDRAWN: ["withdraw"],
    }[status]
    for step in path:
        if step == "start":
            desk.start(pid, REP, NOW)
        elif step == "request":
            desk.request(pid, REP, NOW)
        elif step == "verify":
            desk.verify(pid, REV, NOW)
        elif step == "reopen":
            desk.reopen(pid, inspector(), NOW)
        elif step == "withdraw":
            desk.withdraw(pid, REV, NOW)
    assert desk.problem(pid).status is status
    return desk, pid


def attempt(desk: Desk, pid: uuid.UUID, command: str) -> list[e.Event]:
    """Decide (without applying) `command` on the item, by the official entitled to send it."""
    state = desk.problem(pid)
    if command == "start":
        return d.decide_start_rectification(state, c.StartRectification(problem_id=pid, plan="方案"),
                                            actor=REP, now=NOW)
    if command == "request_close_out":
        return d.decide_request_close_out(
            state, c.RequestCloseOut(problem_id=pid, evidence_text="照片",
                                     attachment_hashes=(content_hash("x"),)), actor=REP, now=NOW)
    if command == "verify":
        return d.decide_verify_close_out(state, c.VerifyCloseOut(problem_id=pid, conclusion="合格"),
                                         actor=REV2, now=NOW)
    if command == "return":
        return d.decide_return_close_out(state, c.ReturnCloseOut(problem_id=pid, reason="材料不全"),
                                         actor=REV2, now=NOW)
    if command == "request_extension":
        return d.decide_request_extension(
            state, c.RequestExtension(problem_id=pid, new_deadline=date(2024, 5, 20), reason="招标"),
            actor=REP, now=NOW)
    if command == "decide_extension":
        return d.decide_extension(state, c.DecideExtension(problem_id=pid, approved=True, reason="同意"),
                                  actor=REV2, now=NOW)
    if command == "reopen":
        return d.decide_reopen_problem(
            state, desk.sequence(UNIT),
            c.ReopenProblem(problem_id=pid, new_problem_id=uuid.uuid4(), reason="反弹"),
            actor=inspector(), now=NOW, rules=RULES)
    if command == "withdraw":
        return d.decide_withdraw_problem(state, c.WithdrawProblem(problem_id=pid, reason="误登记"),
                                         actor=REV2, now=NOW)
    if command == "register":
        ref = project(UNIT)
        return d.decide_register_problem(
            state, desk.sequence(UNIT),
            c.RegisterProblem(problem_id=pid, project_id=ref.project_id, description="另一个问题",
                              deadline=date(2024, 5, 7)),
            project=ref, actor=REP, now=NOW, rules=RULES)
    raise AssertionError(command)


# (command, status it is legal from) -> status after it; anything not listed is illegal.
LEGAL = {
    ("start", S.REGISTERED): S.IN_RECTIFICATION,
    ("request_close_out", S.IN_RECTIFICATION): S.CLOSE_OUT_REQUESTED,
    ("verify", S.CLOSE_OUT_REQUESTED): S.CLOSED,
    ("return", S.CLOSE_OUT_REQUESTED): S.IN_RECTIFICATION,
    ("request_extension", S.REGISTERED): S.REGISTERED,
    ("request_extension", S.IN_RECTIFICATION): S.IN_RECTIFICATION,
    ("reopen", S.CLOSED): S.REOPENED,
    ("withdraw", S.REGISTERED): S.WITHDRAWN,
    ("withdraw", S.IN_RECTIFICATION): S.WITHDRAWN,
}
COMMANDS = ("start", "request_close_out", "verify", "return", "request_extension", "reopen",
            "withdraw", "register")
ILLEGAL = [(cmd, status) for cmd in COMMANDS for status in S if (cmd, status) not in LEGAL]


@pytest.mark.parametrize(("command", "status"), list(LEGAL), ids=lambda v: str(v))
def test_a_legal_transition_moves_the_item_to_the_next_state(command, status):
    desk, pid = item_in(status)
    events = attempt(desk, pid, command)
    assert events, "a legal command decides at least one event"
    desk.apply(events)
    assert desk.problem(pid).status is LEGAL[(command, status)]


@pytest.mark.parametrize(("command", "status"), ILLEGAL, ids=lambda v: str(v))
def test_an_illegal_transition_is_refused_naming_the_current_state(command, status):
    desk, pid = item_in(status)
    before = desk.problem(pid)
    with pytest.raises(IllegalTransitionError) as refused:
        attempt(desk, pid, command)
    assert str(status) in str(refused.value)
    assert desk.problem(pid) == before


@pytest.mark.parametrize("command", [cmd for cmd in COMMANDS if cmd != "register"])
def test_a_command_on_an_unregistered_item_is_not_found(command):
    desk = Desk()
    with pytest.raises(NotFoundError):
        attempt(desk, uuid.uuid4(), command)


def test_every_transition_event_carries_the_item_and_its_unit():
    desk, pid = item_in(S.REOPENED)
    for event in desk.log:
        assert event.unit == UNIT
    assert {type(ev) for ev in desk.log} >= {e.ProblemRegistered, e.RectificationStarted,
                                             e.CloseOutRequested, e.CloseOutVerified,
                                             e.ProblemReopened, e.SeqNoAllocated}


# ------------------------------------------------------------------------------------------
# Extensions


@pytest.mark.parametrize("status", [S.REGISTERED, S.IN_RECTIFICATION, S.CLOSE_OUT_REQUESTED])
def test_a_pending_extension_is_decided_while_the_item_is_open(status):
    desk, pid = item_in(S.IN_RECTIFICATION if status is S.CLOSE_OUT_REQUESTED else status)
    desk.request_extension(pid, REP, NOW, new_deadline=date(2024, 5, 20))
    if status is S.CLOSE_OUT_REQUESTED:
        desk.request(pid, REP, NOW)
    desk.apply(attempt(desk, pid, "decide_extension"))
    state = desk.problem(pid)
    assert state.deadline == date(2024, 5, 20)
    assert state.pending_extension is None and state.extensions_granted == 1
    assert state.status is status


def test_a_rejected_extension_keeps_the_deadline_and_says_so():
    desk, pid = item_in(S.IN_RECTIFICATION)
    desk.request_extension(pid, REP, NOW, new_deadline=date(2024, 5, 20))
    [decided] = desk.decide_extension(pid, REV, NOW, approved=False)
    assert decided.approved is False
    assert decided.deadline == date(2024, 5, 7) and decided.requested_deadline == date(2024, 5, 20)
    assert desk.problem(pid).deadline == date(2024, 5, 7)
    assert desk.problem(pid).pending_extension is None


@pytest.mark.parametrize("status", list(S))
def test_deciding_without_a_pending_extension_is_illegal(status):
    desk, pid = item_in(status)
    with pytest.raises(IllegalTransitionError) as refused:
        attempt(desk, pid, "decide_extension")
    assert str(status) in str(refused.value)


def test_a_second_extension_request_waits_for_the_first_decision():
    desk, pid = item_in(S.IN_RECTIFICATION)
    desk.request_extension(pid, REP, NOW)
    with pytest.raises(IllegalTransitionError, match="pending"):
        attempt(desk, pid, "request_extension")


def test_an_extension_must_move_the_deadline_later():
    desk, pid = item_in(S.IN_RECTIFICATION)
    with pytest.raises(d.InvalidCommandError):
        desk.request_extension(pid, REP, NOW, new_deadline=date(2024, 5, 7))


def test_an_extension_is_decided_by_someone_other_than_its_requester():
    desk, pid = item_in(S.IN_RECTIFICATION)
    desk.request_extension(pid, REV, NOW)
    with pytest.raises(d.FourEyesError):
        desk.decide_extension(pid, REV, NOW)
    assert desk.decide_extension(pid, REV2, NOW)


def test_an_extension_is_decided_by_the_verifying_authority_or_the_city():
    desk, pid = item_in(S.IN_RECTIFICATION)
    desk.request_extension(pid, REP, NOW)
    for outsider in (reporter(UNIT, 2), inspector(), reviewer("huarong")):
        with pytest.raises(ForbiddenError):
            desk.decide_extension(pid, outsider, NOW)
    assert desk.decide_extension(pid, city_admin(), NOW)


# ------------------------------------------------------------------------------------------
# Four-eyes and who verifies


def test_close_out_needs_a_second_person():
    desk, pid = item_in(S.IN_RECTIFICATION)
    desk.request(pid, REV, NOW)              # the reviewer asked for it himself
    with pytest.raises(d.FourEyesError):
        desk.verify(pid, REV, NOW)
    with pytest.raises(d.FourEyesError):
        desk.return_(pid, REV, NOW)
    assert desk.problem(pid).status is S.CLOSE_OUT_REQUESTED
    desk.verify(pid, REV2, NOW)
    closed = desk.problem(pid)
    assert closed.status is S.CLOSED and closed.verified_by == REV2.id != closed.close_out_requested_by


@pytest.mark.parametrize("source", [e.ProblemSource.SELF_INSPECTION, e.ProblemSource.LEDGER])
def test_a_district_found_item_is_verified_by_its_own_units_reviewer_only(source):
    desk = Desk()
    registrant = REP if source is e.ProblemSource.SELF_INSPECTION else city_admin()
    pid = desk.register(registrant, NOW, unit=UNIT, source=source)
    desk.start(pid, REP, NOW)
    desk.request(pid, REP, NOW)
    for wrong in (inspector(), city_admin(), reporter(UNIT, 2), reviewer("huarong")):
        with pytest.raises(ForbiddenError):
            desk.verify(pid, wrong, NOW)
        with pytest.raises(ForbiddenError):
            desk.return_(pid, wrong, NOW)
    [verified] = desk.verify(pid, REV, NOW)
    assert verified.verifier_role == "district_reviewer"


def test_a_city_found_item_is_verified_only_by_an_inspector():
    desk = Desk()
    pid = desk.register(inspector(), NOW, unit=UNIT, source=e.ProblemSource.CITY)
    desk.start(pid, REP, NOW)
    desk.request(pid, REP, NOW)
    for wrong in (REV, city_admin(), REP):
        with pytest.raises(ForbiddenError):
            desk.verify(pid, wrong, NOW)
    desk.return_(pid, inspector(2), NOW)
    assert desk.problem(pid).status is S.IN_RECTIFICATION
    assert desk.problem(pid).times_returned == 1
    desk.request(pid, city_admin(), NOW)
    [verified] = desk.verify(pid, inspector(), NOW)
    assert verified.verifier_role == "inspector"
    assert desk.problem(pid).status is S.CLOSED


def test_a_withdrawal_is_approved_by_the_authority_and_not_by_the_registrant():
    desk = Desk()
    pid = desk.register(REV, NOW)
    with pytest.raises(d.FourEyesError):
        desk.withdraw(pid, REV, NOW)
    with pytest.raises(ForbiddenError):
        desk.withdraw(pid, REP, NOW)
    [withdrawn] = desk.withdraw(pid, REV2, NOW)
    assert withdrawn.approved_by == REV2.id and withdrawn.approver == REV2.name
    state = desk.problem(pid)
    assert state.status is S.WITHDRAWN and state.seq_no == 1  # stays in history with its 序号


def test_the_city_admin_may_approve_a_withdrawal():
    desk = Desk()
    pid = desk.register(REP, NOW)
    assert desk.withdraw(pid, city_admin(), NOW)


# ------------------------------------------------------------------------------------------
# Roles and scoping


ALL_COMMANDS_ON = {
    S.REGISTERED: ["start", "request_extension", "withdraw"],
    S.IN_RECTIFICATION: ["request_close_out"],
    S.CLOSE_OUT_REQUESTED: ["verify", "return"],
    S.CLOSED: ["reopen"],
}


def _as(actor, desk, pid, command):
    state = desk.problem(pid)
    builders = {
        "start": lambda: d.decide_start_rectification(
            state, c.StartRectification(problem_id=pid, plan="方案"), actor=actor, now=NOW),
        "request_extension": lambda: d.decide_request_extension(
            state, c.RequestExtension(problem_id=pid, new_deadline=date(2024, 6, 1), reason="r"),
            actor=actor, now=NOW),
        "withdraw": lambda: d.decide_withdraw_problem(
            state, c.WithdrawProblem(problem_id=pid, reason="r"), actor=actor, now=NOW),
        "request_close_out": lambda: d.decide_request_close_out(
            state, c.RequestCloseOut(problem_id=pid, evidence_text="t",
                                     attachment_hashes=(content_hash("y"),)), actor=actor, now=NOW),
        "verify": lambda: d.decide_verify_close_out(
            state, c.VerifyCloseOut(problem_id=pid, conclusion="ok"), actor=actor, now=NOW),
        "return": lambda: d.decide_return_close_out(
            state, c.ReturnCloseOut(problem_id=pid, reason="r"), actor=actor, now=NOW),
        "reopen": lambda: d.decide_reopen_problem(
            state, desk.sequence(UNIT),
            c.ReopenProblem(problem_id=pid, new_problem_id=uuid.uuid4(), reason="r"),
            actor=actor, now=NOW, rules=RULES),
    }
    return builders[command]()


CASES = [(status, command) for status, commands in ALL_COMMANDS_ON.items() for command in commands]


@pytest.mark.parametrize(("status", "command"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("actor", [LEADER, AUDITOR], ids=["leader", "auditor"])
def test_leaders_and_auditors_send_no_commands(status, command, actor):
    desk, pid = item_in(status)
    with pytest.raises(ForbiddenError):
        _as(actor, desk, pid, command)


@pytest.mark.parametrize(("status", "command"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("actor", [reporter("huarong"), reviewer("huarong")],
                         ids=["reporter", "reviewer"])
def test_a_district_role_acts_only_on_its_own_unit(status, command, actor):
    desk, pid = item_in(status)
    with pytest.raises(ForbiddenError, match="own unit"):
        _as(actor, desk, pid, command)


def test_an_inspector_may_not_do_a_units_rectification_work():
    desk, pid = item_in(S.REGISTERED)
    for command in ("start", "request_extension"):
        with pytest.raises(ForbiddenError):
            _as(inspector(), desk, pid, command)


@pytest.mark.parametrize(("actor", "source", "allowed"), [
    (REP, e.ProblemSource.SELF_INSPECTION, True),
    (REV, e.ProblemSource.SELF_INSPECTION, True),
    (city_admin(), e.ProblemSource.SELF_INSPECTION, True),
    (inspector(), e.ProblemSource.SELF_INSPECTION, False),
    (inspector(), e.ProblemSource.CITY, True),
    (city_admin(), e.ProblemSource.CITY, True),
    (REP, e.ProblemSource.CITY, False),
    (REV, e.ProblemSource.LEDGER, False),
    (inspector(), e.ProblemSource.LEDGER, False),
    (city_admin(), e.ProblemSource.LEDGER, True),
    (LEADER, e.ProblemSource.SELF_INSPECTION, False),
    (AUDITOR, e.ProblemSource.CITY, False),
    (reporter("huarong"), e.ProblemSource.SELF_INSPECTION, False),
], ids=lambda v: str(v) if not hasattr(v, "role") else f"{v.role}-{v.unit}")
def test_who_may_register_depends_on_the_source(actor, source, allowed):
    desk = Desk()
    if allowed:
        pid = desk.register(actor, NOW, unit=UNIT, source=source)
        assert desk.problem(pid).source is source
    else:
        with pytest.raises(ForbiddenError):
            desk.register(actor, NOW, unit=UNIT, source=source)
        assert desk.problems == {}


def test_a_problem_needs_a_known_project():
    ref = project(UNIT)
    cmd = c.RegisterProblem(problem_id=uuid.uuid4(), project_id=ref.project_id, description="x",
                            deadline=date(2024, 5, 7))
    with pytest.raises(NotFoundError, match="unknown project"):
        d.decide_register_problem(d.ProblemState(), d.UnitSequenceState(UNIT), cmd, project=None,
                                  actor=REP, now=NOW, rules=RULES)


# ------------------------------------------------------------------------------------------
# 序号, deadlines, overdue


def test_seq_no_is_assigned_per_unit_and_never_reused():
    desk = Desk()
    first = desk.register(REP, NOW)
    second = desk.register(REP, NOW)
    other_unit = desk.register(reporter("huarong"), NOW)
    desk.withdraw(second, REV, NOW)
    third = desk.register(REP, NOW)
    assert [desk.problem(p).seq_no for p in (first, second, third)] == [1, 2, 3]
    assert desk.problem(other_unit).seq_no == 1
    allocated = [ev for ev in desk.log if isinstance(ev, e.SeqNoAllocated) and ev.unit == UNIT]
    assert [a.seq_no for a in allocated] == [1, 2, 3]


def test_registering_the_same_item_again_decides_nothing():
    desk = Desk()
    pid = desk.register(REP, NOW)
    again = d.decide_register_problem(
        desk.problem(pid), desk.sequence(UNIT),
        c.RegisterProblem(problem_id=pid, project_id=project(UNIT).project_id,
                          description="未开展助餐服务", deadline=date(2024, 5, 7)),
        project=project(UNIT), actor=REP, now=NOW, rules=RULES)
    assert again == []


def test_registration_appends_the_seq_no_and_the_item_to_their_own_streams():
    desk = Desk()
    pid = desk.register(REP, NOW)
    allocated, registered = desk.log
    assert d.stream_id_for(allocated) == "unit-echeng"
    assert d.stream_id_for(registered) == f"problem-{pid}"


def test_an_immediate_item_is_due_seven_days_after_the_local_registration_day():
    desk = Desk()
    late_evening_utc = at(2024, 3, 10, 23, 30)  # 2024-03-10 23:30 local
    pid = desk.register(REP, late_evening_utc, immediate=True)
    state = desk.problem(pid)
    assert state.deadline_kind is e.DeadlineKind.IMMEDIATE
    assert state.deadline == date(2024, 3, 17)


def test_the_immediate_period_is_configurable():
    desk = Desk()
    pid = desk.register(REP, NOW, immediate=True, rules=replace(RULES, immediate_days=3))
    assert desk.problem(pid).deadline == date(2024, 3, 13)


def test_a_deadline_before_the_registration_day_is_refused():
    with pytest.raises(d.InvalidCommandError):
        Desk().register(REP, NOW, deadline=date(2024, 3, 9))


def test_a_date_item_needs_a_date_and_an_immediate_item_takes_none():
    with pytest.raises(ValueError):
        c.RegisterProblem(problem_id=uuid.uuid4(), project_id="p", description="x")
    with pytest.raises(ValueError):
        c.RegisterProblem(problem_id=uuid.uuid4(), project_id="p", description="x",
                          deadline_kind=e.DeadlineKind.IMMEDIATE, deadline=date(2024, 5, 7))


def test_overdue_is_derived_from_the_deadline_and_the_clock():
    desk, pid = item_in(S.IN_RECTIFICATION)
    state = desk.problem(pid)  # due 2024-05-07
    assert not d.is_overdue(state, at(2024, 5, 7, 23, 59, 59), RULES)
    assert d.is_overdue(state, at(2024, 5, 8, 0, 0, 0), RULES)
    desk.request(pid, REP, NOW)
    assert d.is_overdue(desk.problem(pid), at(2024, 5, 8), RULES), "not 销号 until verified"
    desk.verify(pid, REV, NOW)
    assert not d.is_overdue(desk.problem(pid), at(2024, 5, 8), RULES)


def test_a_withdrawn_item_is_never_overdue():
    desk, pid = item_in(S.WITHDRAWN)
    assert not d.is_overdue(desk.problem(pid), at(2024, 6, 1), RULES)


def test_was_open_at_follows_the_items_history():
    desk = Desk()
    pid = desk.register(REP, at(2024, 3, 10))
    desk.start(pid, REP, at(2024, 3, 11))
    desk.request(pid, REP, at(2024, 4, 1))
    desk.verify(pid, REV, at(2024, 5, 9))
    state = desk.problem(pid)
    assert not d.was_open_at(state, at(2024, 3, 9))
    assert d.was_open_at(state, at(2024, 5, 7, 23, 59, 59))
    assert not d.was_open_at(state, at(2024, 5, 9, 11))


# ------------------------------------------------------------------------------------------
# 反弹 and evidence reuse


def test_reopening_registers_a_new_linked_item_with_the_next_seq_no():
    desk, original = item_in(S.CLOSED)
    other = desk.register(REP, NOW)
    new = desk.reopen(original, inspector(), NOW)
    old_state, new_state = desk.problem(original), desk.problem(new)
    assert old_state.status is S.REOPENED and old_state.reopened_as == new
    assert new_state.status is S.REGISTERED and new_state.reopened_from == original
    assert new_state.seq_no == desk.problem(other).seq_no + 1 == 3
    assert new_state.source is e.ProblemSource.CITY  # the city found it again
    assert new_state.project_id == old_state.project_id
    assert new_state.deadline_kind is e.DeadlineKind.IMMEDIATE


def test_a_unit_that_finds_its_own_rebound_gets_a_self_found_item():
    desk, original = item_in(S.CLOSED)
    new = desk.reopen(original, REP, NOW)
    assert desk.problem(new).source is e.ProblemSource.SELF_INSPECTION


def test_reopening_again_with_the_same_new_id_decides_nothing():
    desk, original = item_in(S.CLOSED)
    new = desk.reopen(original, inspector(), NOW)
    state = desk.problem(original)
    again = d.decide_reopen_problem(
        state, desk.sequence(UNIT),
        c.ReopenProblem(problem_id=original, new_problem_id=new, reason="反弹"),
        actor=inspector(), now=NOW, rules=RULES)
    assert again == []


def test_the_same_evidence_on_a_second_item_is_flagged_on_the_second():
    desk = Desk()
    photo = content_hash("same-photo.jpg")
    first, second = desk.register(REP, NOW), desk.register(REP, NOW)
    for pid in (first, second):
        desk.start(pid, REP, NOW)
    assert [type(ev) for ev in desk.request(first, REP, NOW, hashes=(photo,))] == [e.CloseOutRequested]
    requested, flag = desk.request(second, REP, NOW, hashes=(photo, content_hash("new")))
    assert isinstance(flag, e.EvidenceReuseFlagged)
    assert flag.problem_id == second and flag.attachment_hash == photo
    assert flag.other_problem_ids == (first,)
    assert desk.problem(second).flagged_hashes == (photo,)
    assert desk.problem(first).flagged_hashes == ()


def test_refiling_evidence_on_the_same_item_is_not_reuse():
    desk, pid = item_in(S.IN_RECTIFICATION)
    photo = content_hash("p")
    desk.request(pid, REP, NOW, hashes=(photo,))
    desk.return_(pid, REV, NOW)
    assert [type(ev) for ev in desk.request(pid, REP, NOW, hashes=(photo,))] == [e.CloseOutRequested]


def test_find_evidence_reuse_lists_every_other_item_once_per_hash():
    me, a, b = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    h1, h2 = content_hash("1"), content_hash("2")
    flags = d.find_evidence_reuse(me, UNIT, [h1, h1, h2], {h1: {b, a, me}, h2: {me}})
    assert len(flags) == 1
    assert flags[0].other_problem_ids == (a, b)


def test_close_out_needs_evidence_text_and_an_attachment():
    with pytest.raises(ValueError):
        c.RequestCloseOut(problem_id=uuid.uuid4(), evidence_text="  ", attachment_hashes=(content_hash("a"),))
    with pytest.raises(ValueError):
        c.RequestCloseOut(problem_id=uuid.uuid4(), evidence_text="照片", attachment_hashes=())
    with pytest.raises(ValueError):
        c.RequestCloseOut(problem_id=uuid.uuid4(), evidence_text="照片", attachment_hashes=("not-a-hash",))
