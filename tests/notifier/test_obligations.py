"""Obligations, pure: facts recorded once, stale or overtaken facts change nothing, parts add up."""
from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime

import pytest

from services.notifier import commands as c
from services.notifier.domain import obligations as ob
from services.notifier.events import ObligationKind, SourceRef
from shared.campaign import load_campaign
from shared.errors import DomainError

pytestmark = pytest.mark.unit

CAMPAIGN = load_campaign()
TZ = CAMPAIGN.tz
AT = datetime(2024, 4, 1, 10, 0, tzinfo=TZ)
PROBLEM = "problem:4f1c0000-0000-0000-0000-000000000001"


def source(version: int, stream: str = "problem-1") -> SourceRef:
    return SourceRef(event_type="rectification.Fact", event_id=uuid.uuid4(), stream_id=stream,
                     stream_version=version)


def apply(state: ob.ObligationState, *commands: c.Command) -> ob.ObligationState:
    """Decide each command against the state so far and fold what it decided."""
    for cmd in commands:
        if isinstance(cmd, c.OpenObligation):
            events = ob.decide_open(state, cmd, campaign=CAMPAIGN)
        elif isinstance(cmd, c.MoveDueDate):
            events = ob.decide_move_due(state, cmd, campaign=CAMPAIGN)
        elif isinstance(cmd, c.RecordFulfilment):
            events = ob.decide_fulfil({state.obligation_id: state}, cmd, campaign=CAMPAIGN)
        elif isinstance(cmd, c.RecordReturn):
            events = ob.decide_return({state.obligation_id: state}, cmd, campaign=CAMPAIGN)
        else:
            assert isinstance(cmd, c.CancelObligation)
            events = ob.decide_cancel(state, cmd, campaign=CAMPAIGN)
        state = ob.fold(state, events)
    return state


def item_history() -> list[c.Command]:
    """An item's life as rectification records it: registered (v1), extended (v2), close-out
    requested (v3), returned (v4), requested again (v5)."""
    return [
        c.OpenObligation(obligation_id=PROBLEM, unit="echeng", kind=ObligationKind.PROBLEM,
                         title="问题整改(序号1)", due_on=date(2024, 4, 10), at=AT, source=source(1)),
        c.MoveDueDate(obligation_id=PROBLEM, unit="echeng", due_on=date(2024, 4, 20), at=AT,
                      reason="延期申请已批准", source=source(2)),
        c.RecordFulfilment(obligation_ids=(PROBLEM,), unit="echeng", part=ob.PART_ITEM, at=AT,
                           how="已申请销号", source=source(3)),
        c.RecordReturn(candidates=(PROBLEM,), unit="echeng", part=ob.PART_ITEM, at=AT,
                       reason="证据不足", source=source(4)),
        c.RecordFulfilment(obligation_ids=(PROBLEM,), unit="echeng", part=ob.PART_ITEM, at=AT,
                           how="已申请销号", source=source(5)),
    ]


def test_an_items_facts_in_any_order_end_in_the_same_state():
    history = item_history()
    in_order = apply(ob.initial_state(PROBLEM, CAMPAIGN), *history)
    assert in_order.status is ob.ObligationStatus.FULFILLED
    assert in_order.due_on == date(2024, 4, 20) and in_order.parts[ob.PART_ITEM].version == 5
    for order in itertools.permutations(history):
        state = apply(ob.initial_state(PROBLEM, CAMPAIGN), *order)
        assert (state.status, state.due_on, state.parts) == (
            in_order.status, in_order.due_on, in_order.parts), order


def test_a_repeated_fact_decides_nothing():
    opened = item_history()[0]
    state = apply(ob.initial_state(PROBLEM, CAMPAIGN), opened)
    assert ob.decide_open(state, opened, campaign=CAMPAIGN) == []


def test_the_liaisons_deadline_needs_both_the_leader_and_the_liaison():
    oid = ob.deadline_obligation_id("huarong", "liaisons")
    state = ob.initial_state(oid, CAMPAIGN)

    def registered(role: str, version: int) -> c.RecordFulfilment:
        return c.RecordFulfilment(obligation_ids=(oid,), unit="huarong", part=role, at=AT,
                                  how="附件1", source=source(version, "liaison-huarong"))

    state = apply(state, registered("leader", 1))
    assert state.status is ob.ObligationStatus.OPEN
    state = apply(state, registered("liaison", 2))
    assert state.status is ob.ObligationStatus.FULFILLED


def test_a_typical_case_sent_back_no_longer_counts():
    oid = ob.deadline_obligation_id("gedian", "typical_case")
    state = apply(ob.initial_state(oid, CAMPAIGN), c.RecordFulfilment(
        obligation_ids=(oid,), unit="gedian", part="gedian-typical_case-1", at=AT, how="报送",
        source=source(1, "report-gedian-typical_case-1")))
    assert state.status is ob.ObligationStatus.FULFILLED
    later = datetime(2024, 5, 30, 10, 0, tzinfo=TZ)
    state = apply(state, c.RecordReturn(
        candidates=(oid,), unit="gedian", part="gedian-typical_case-1", at=later,
        reason="审核退回", source=source(2, "report-gedian-typical_case-1")))
    assert state.status is ob.ObligationStatus.OPEN and state.armed_since == later
    assert state.returned_parts() == ["gedian-typical_case-1"]


def test_a_review_of_a_monthly_list_not_seen_yet_waits_for_its_submission():
    march = ob.deadline_obligation_id("echeng", "monthly_list_2024_03")
    april = ob.deadline_obligation_id("echeng", "monthly_list_2024_04")
    states = {oid: ob.initial_state(oid, CAMPAIGN) for oid in (march, april)}
    review = c.RecordReturn(candidates=(march, april), unit="echeng", part="echeng-ml-2024-04",
                            at=AT, reason="审核退回", source=source(2, "report-x"))
    with pytest.raises(ob.NotYetKnownError):
        ob.decide_return(states, review, campaign=CAMPAIGN)
    states[april] = ob.fold(states[april], ob.decide_fulfil(states, c.RecordFulfilment(
        obligation_ids=(april,), unit="echeng", part="echeng-ml-2024-04", at=AT, how="报送",
        source=source(1, "report-x")), campaign=CAMPAIGN))
    [returned] = ob.decide_return(states, review, campaign=CAMPAIGN)
    assert returned.obligation_id == april


def test_a_withdrawn_item_is_cancelled_and_a_unit_outside_the_campaign_is_refused():
    state = apply(ob.initial_state(PROBLEM, CAMPAIGN), item_history()[0], c.CancelObligation(
        obligation_id=PROBLEM, unit="echeng", part=ob.PART_ITEM, at=AT, reason="登记错误",
        source=source(2)))
    assert state.status is ob.ObligationStatus.CANCELLED
    with pytest.raises(DomainError):
        ob.decide_open(ob.initial_state(PROBLEM, CAMPAIGN), item_history()[0].model_copy(
            update={"unit": "wuhan"}), campaign=CAMPAIGN)


def test_an_obligation_id_that_names_nothing_is_refused():
    for bad in ("deadline:echeng:no_such_deadline", "deadline:wuhan:liaisons", "meeting:1"):
        with pytest.raises(ob.UnknownObligationError):
            ob.initial_state(bad, CAMPAIGN)
