"""Random sequences of 销号 commands by random officials, checked against an independent oracle.

Invariants: a closed item was verified by someone other than its requester and with the right role;
序号 never repeats (nor skips) within a unit; a refused command changes nothing and returns no
events; a command succeeds exactly when the oracle says the actor may do it from that state.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification.domain import ProblemStatus as S
from shared.errors import DomainError, ForbiddenError, IllegalTransitionError
from shared.messages import Actor, Role

from .support import (AUDITOR, LEADER, RULES, Desk, at, city_admin, content_hash, inspector, project,
                      reporter, reviewer)

pytestmark = pytest.mark.unit

UNITS = ("echeng", "huarong")
# huarong is a small unit with ONE reviewer: when he asks for a close-out himself, only the city
# bureau can decide it (DOMAIN.md §4).
ACTORS: tuple[Actor, ...] = (
    *(reporter(u, n) for u in UNITS for n in (1, 2)),
    reviewer("echeng", 1), reviewer("echeng", 2), reviewer("huarong", 1),
    inspector(1), inspector(2), city_admin(1), LEADER, AUDITOR,
)
ACTOR_BY_ID = {a.id: a for a in ACTORS}
HASHES = tuple(content_hash(f"photo-{i}") for i in range(4))
COMMANDS = ("start", "request_close_out", "verify", "return", "request_extension",
            "decide_extension", "withdraw", "reopen")
_WORKERS = {Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER, Role.CITY_ADMIN}
# What usually comes next from each state; drawing from these half of the time lets short runs
# reach closed, returned and rebounded items instead of refusing nearly everything.
NEXT = {
    S.REGISTERED: ("start", "start", "request_extension"),
    S.IN_RECTIFICATION: ("request_close_out", "request_close_out", "request_extension",
                         "decide_extension"),
    S.CLOSE_OUT_REQUESTED: ("verify", "return", "decide_extension"),
    S.CLOSED: ("reopen",),
    S.REOPENED: ("start",),
    S.WITHDRAWN: ("start",),
}


def may_register(actor: Actor, unit: str, source: e.ProblemSource) -> bool:
    if not actor.role.may_command or (actor.role.is_district and actor.unit != unit):
        return False
    return actor.role in {
        e.ProblemSource.SELF_INSPECTION: _WORKERS,
        e.ProblemSource.CITY: {Role.INSPECTOR, Role.CITY_ADMIN},
        e.ProblemSource.LEDGER: {Role.CITY_ADMIN},
    }[source]


def is_verifier(actor: Actor, item: d.ProblemState) -> bool:
    if item.source is e.ProblemSource.CITY:
        return actor.role is Role.INSPECTOR
    return actor.role is Role.DISTRICT_REVIEWER and actor.unit == item.unit


def may_judge_close_out(actor: Actor, item: d.ProblemState) -> bool:
    """The verifier; or the city bureau when the unit's own reviewer asked for it."""
    requester = ACTOR_BY_ID.get(item.close_out_requested_by or "")
    asked_by_reviewer = (item.source is not e.ProblemSource.CITY and requester is not None
                         and requester.role is Role.DISTRICT_REVIEWER)
    return is_verifier(actor, item) or (asked_by_reviewer and actor.role is Role.CITY_ADMIN)


def oracle(actor: Actor, command: str, item: d.ProblemState) -> bool:
    """Written from DOMAIN.md §1 and §4, independently of domain.py's code."""
    if not actor.role.may_command or (actor.role.is_district and actor.unit != item.unit):
        return False
    status = item.status
    if command == "start":
        return status is S.REGISTERED and actor.role in _WORKERS
    if command == "request_close_out":
        return status is S.IN_RECTIFICATION and actor.role in _WORKERS
    if command in ("verify", "return"):
        return (status is S.CLOSE_OUT_REQUESTED and may_judge_close_out(actor, item)
                and actor.id != item.close_out_requested_by)
    if command == "request_extension":
        return (status in (S.REGISTERED, S.IN_RECTIFICATION) and actor.role in _WORKERS
                and item.pending_extension is None)
    if command == "decide_extension":
        return (status in (S.REGISTERED, S.IN_RECTIFICATION, S.CLOSE_OUT_REQUESTED)
                and item.pending_extension is not None
                and (is_verifier(actor, item) or actor.role is Role.CITY_ADMIN)
                and actor.id != item.pending_extension.requested_by)
    if command == "reopen":
        return status is S.CLOSED and actor.role in {*_WORKERS, Role.INSPECTOR}
    if command == "withdraw":
        return (status in (S.REGISTERED, S.IN_RECTIFICATION)
                and (is_verifier(actor, item) or actor.role is Role.CITY_ADMIN)
                and actor.id != item.registered_by)
    raise AssertionError(command)


class ProblemLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.desk = Desk()
        self.now = at(2024, 3, 8)
        self.next_id = 0
        self.successes = 0

    def fresh_id(self) -> uuid.UUID:
        self.next_id += 1
        return uuid.UUID(int=self.next_id)

    def snapshot(self):
        return dict(self.desk.problems), dict(self.desk.sequences), len(self.desk.log)

    def refused(self, before, error: Exception, item: d.ProblemState | None = None) -> None:
        assert self.snapshot() == before, "a refused command changed something"
        if isinstance(error, IllegalTransitionError) and item is not None:
            assert str(item.status) in str(error)
        # What a person reads: the refusal's own Chinese message, never only its kind (issue 12).
        assert getattr(error, "zh", None), f"no Chinese message on {error!r}"
        assert not any(code in error.zh for code in ("district_", "city_admin", "close_out", "_"))

    # Few items, many steps each: the life cycle is deep, the width adds little.
    @precondition(lambda self: len(self.desk.problems) < 4)
    @rule(data=st.data(), unit=st.sampled_from(UNITS),
          source=st.sampled_from(list(e.ProblemSource)), immediate=st.booleans())
    def register(self, data, unit, source, immediate):
        entitled = [a for a in ACTORS if may_register(a, unit, source)]
        actor = data.draw(st.one_of(st.sampled_from(entitled), st.sampled_from(ACTORS)), "actor")
        ref = project(unit)
        pid = self.fresh_id()
        cmd = c.RegisterProblem(
            problem_id=pid, project_id=ref.project_id, description="问题",
            deadline_kind=e.DeadlineKind.IMMEDIATE if immediate else e.DeadlineKind.DATE,
            deadline=None if immediate else self.now.date() + timedelta(days=30),
            source=source, source_ref="ref" if source is e.ProblemSource.LEDGER else None,
            ledger_reason="not_operating" if source is e.ProblemSource.LEDGER else None)
        before = self.snapshot()
        try:
            events = d.decide_register_problem(self.desk.problem(pid), self.desk.sequence(unit), cmd,
                                               project=ref, actor=actor, now=self.now, rules=RULES)
        except (DomainError, ForbiddenError) as error:
            assert not may_register(actor, unit, source), f"{actor.role} refused: {error}"
            self.refused(before, error)
            return
        assert may_register(actor, unit, source)
        assert [type(ev) for ev in events] == [e.SeqNoAllocated, e.ProblemRegistered]
        self.desk.apply(events)
        self.successes += 1

    @precondition(lambda self: self.desk.problems)
    @rule(data=st.data(), approved=st.booleans(),
          hashes=st.lists(st.sampled_from(HASHES), min_size=1, max_size=2),
          extra_days=st.integers(1, 30), days_later=st.integers(0, 6))
    def act(self, data, approved, hashes, extra_days, days_later):
        self.now += timedelta(days=days_later)
        pid = data.draw(st.sampled_from(sorted(self.desk.problems)), "problem")
        item = self.desk.problem(pid)
        likely = st.sampled_from(NEXT[item.status])
        command = data.draw(st.one_of(likely, likely, st.sampled_from(COMMANDS)), "command")
        actor = self.draw_actor(data, command, item)
        expected = oracle(actor, command, item)
        new_pid = self.fresh_id()
        before = self.snapshot()
        try:
            events = self.decide(item, command, actor, approved, tuple(hashes), extra_days, new_pid)
        except (DomainError, ForbiddenError) as error:
            assert not expected, f"{actor.id} refused {command} on {item.status}: {error!r}"
            self.refused(before, error, item)
            return
        assert expected, f"{actor.id} allowed {command} on {item.status} ({item.source})"
        assert events and all(getattr(ev, "unit", None) == item.unit for ev in events)
        self.desk.apply(events)
        self.successes += 1
        target = {"start": S.IN_RECTIFICATION, "request_close_out": S.CLOSE_OUT_REQUESTED,
                  "verify": S.CLOSED, "return": S.IN_RECTIFICATION, "withdraw": S.WITHDRAWN,
                  "reopen": S.REOPENED}
        assert self.desk.problem(pid).status is target.get(command, item.status)
        if command == "reopen":
            successor = self.desk.problem(new_pid)
            assert successor.status is S.REGISTERED and successor.reopened_from == pid

    @staticmethod
    def draw_actor(data, command: str, item: d.ProblemState) -> Actor:
        """Mostly someone the oracle would allow; often someone already involved with the item
        (its registrant, close-out requester, extension requester: the four-eyes suspects);
        else anyone."""
        entitled = st.sampled_from([a for a in ACTORS if oracle(a, command, item)] or list(ACTORS))
        pending = item.pending_extension.requested_by if item.pending_extension else None
        involved = [ACTOR_BY_ID[i] for i in (item.registered_by, item.close_out_requested_by, pending)
                    if i in ACTOR_BY_ID]
        suspects = st.sampled_from(involved or list(ACTORS))
        return data.draw(st.one_of(entitled, entitled, suspects, st.sampled_from(ACTORS)), "actor")

    def decide(self, item, command, actor, approved, hashes, extra_days, new_pid):
        pid, now = item.problem_id, self.now
        if command == "start":
            return d.decide_start_rectification(item, c.StartRectification(problem_id=pid, plan="方案"),
                                                actor=actor, now=now)
        if command == "request_close_out":
            return d.decide_request_close_out(
                item, c.RequestCloseOut(problem_id=pid, evidence_text="证据", attachment_hashes=hashes),
                actor=actor, now=now, evidence_index=self.desk.evidence_index)
        if command == "verify":
            return d.decide_verify_close_out(item, c.VerifyCloseOut(problem_id=pid, conclusion="合格"),
                                             actor=actor, now=now)
        if command == "return":
            return d.decide_return_close_out(item, c.ReturnCloseOut(problem_id=pid, reason="不合格"),
                                             actor=actor, now=now)
        if command == "request_extension":
            return d.decide_request_extension(
                item, c.RequestExtension(problem_id=pid, new_deadline=item.deadline + timedelta(days=extra_days),
                                         reason="延期"), actor=actor, now=now)
        if command == "decide_extension":
            return d.decide_extension(item, c.DecideExtension(problem_id=pid, approved=approved, reason="决定"),
                                      actor=actor, now=now)
        if command == "withdraw":
            return d.decide_withdraw_problem(item, c.WithdrawProblem(problem_id=pid, reason="误登记"),
                                             actor=actor, now=now)
        if command == "reopen":
            return d.decide_reopen_problem(
                item, self.desk.sequence(item.unit),
                c.ReopenProblem(problem_id=pid, new_problem_id=new_pid, reason="反弹"),
                actor=actor, now=now, rules=RULES)
        raise AssertionError(command)

    @invariant()
    def closed_items_were_verified_by_a_second_person_with_the_right_role(self):
        for item in self.desk.items():
            if item.status in (S.CLOSED, S.REOPENED):
                assert item.verified_by is not None
                assert item.verified_by != item.close_out_requested_by
                verifier = ACTOR_BY_ID[item.verified_by]
                assert may_judge_close_out(verifier, item)
                assert item.verifier_role == str(verifier.role)

    @invariant()
    def every_item_waiting_for_a_decision_has_someone_who_may_decide_it(self):
        for item in self.desk.items():
            waiting = []
            if item.status is S.CLOSE_OUT_REQUESTED:
                waiting += ["verify", "return"]
            if item.pending_extension is not None and item.is_open:
                waiting.append("decide_extension")
            if item.status in (S.REGISTERED, S.IN_RECTIFICATION):
                waiting.append("withdraw")
            for command in waiting:
                assert any(oracle(actor, command, item) for actor in ACTORS), (command, item)

    @invariant()
    def seq_numbers_never_repeat_within_a_unit(self):
        for unit in UNITS:
            numbers = sorted(item.seq_no for item in self.desk.items() if item.unit == unit)
            assert numbers == list(range(1, len(numbers) + 1))
            assert self.desk.sequence(unit).last_seq_no == len(numbers)

    @invariant()
    def withdrawals_and_rebounds_keep_their_links(self):
        for item in self.desk.items():
            if item.status is S.WITHDRAWN:
                assert item.withdrawn_by != item.registered_by
            if item.status is S.REOPENED:
                assert self.desk.problem(item.reopened_as).reopened_from == item.problem_id

    @invariant()
    def nobody_reading_only_ever_acted(self):
        actors = {getattr(ev, name, None) for ev in self.desk.log
                  for name in ("registered_by", "started_by", "requested_by", "verified_by",
                               "returned_by", "decided_by", "reopened_by", "approved_by")}
        assert LEADER.id not in actors and AUDITOR.id not in actors

    @invariant()
    def reused_evidence_is_flagged_only_against_other_items(self):
        for event in self.desk.log:
            if isinstance(event, e.EvidenceReuseFlagged):
                assert event.problem_id not in event.other_problem_ids


ProblemLifecycle.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_problem_lifecycle = ProblemLifecycle.TestCase
