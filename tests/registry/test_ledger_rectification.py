"""What a verified 销号 does to the 台账, in memory (DOMAIN.md §4): the entry is marked rectified
with the verifying event, the project stays listed until an assessment; idle again means a new
entry; a 反弹 takes the mark back; only the registry's own reaction may record any of it."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from services.registry import commands as c
from services.registry import domain as d
from services.registry import events as e
from services.registry.events import OperatingStatus as S
from shared.campaign import Campaign, load_campaign
from shared.errors import ForbiddenError, NotFoundError
from shared.messages import SYSTEM_ACTOR, Actor, Role
from tests.registry.test_domain import ADMIN, NOW, assess, register_cmd, registered

pytestmark = pytest.mark.unit

VERIFIED_AT = datetime.fromisoformat("2024-03-28T08:00:00+00:00")   # as rectification stored it


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign()


def idle(campaign: Campaign) -> d.ProjectState:
    state, _ = registered(campaign, register_cmd(claimed_status=S.NOT_OPERATING))
    assert state.on_ledger and not state.ledger_rectified
    return state


def mark(state: d.ProjectState, campaign: Campaign, *, entry_id: str | None = None,
         problem_id: str = "p-1", reason: str | None = "not_operating", actor: Actor = SYSTEM_ACTOR,
         **overrides: Any) -> tuple[d.ProjectState, list[Any]]:
    cmd = c.MarkLedgerEntryRectified(
        project_id=state.project_id, entry_id=entry_id or state.open_ledger_entry,
        ledger_reason=reason, problem_id=problem_id, seq_no=7, verified_by="ec-v",
        verifier_role="district_reviewer", conclusion="经核验已整改到位", verified_at=VERIFIED_AT,
        verification_event_id=f"event-of-{problem_id}", **overrides)
    events = d.decide_mark_ledger_entry_rectified(state, cmd, actor=actor, now=NOW,
                                                  campaign=campaign)
    return d.fold(state, events), events


def test_a_verified_close_out_marks_the_open_entry_rectified_with_the_verifying_event(campaign):
    state = idle(campaign)
    after, [event] = mark(state, campaign)
    assert isinstance(event, e.LedgerEntryRectified)
    assert (event.entry_id, event.entry_open, event.problem_id, event.seq_no) == (
        state.open_ledger_entry, True, "p-1", 7)
    assert event.verification_event_id == "event-of-p-1"
    assert event.verified_at.isoformat() == "2024-03-28T16:00:00+08:00"   # the campaign's offset
    # Rectified, yet still on the 台账 and still not operating: only an assessment changes that.
    assert after.on_ledger and after.ledger_rectified and after.status == S.NOT_OPERATING
    assert mark(after, campaign)[1] == []          # the same item's 销号 again: nothing new


def test_only_the_registrys_own_reaction_marks_an_entry(campaign):
    state = idle(campaign)
    for actor in (ADMIN, Actor(id="system", name="冒充", role=Role.CITY_ADMIN)):
        with pytest.raises(ForbiddenError) as refused:
            mark(state, campaign, actor=actor)
        assert "自动" in refused.value.message_zh


def test_an_entry_the_project_never_had_is_not_found(campaign):
    with pytest.raises(NotFoundError):
        mark(idle(campaign), campaign, entry_id="no-such-entry")


def test_an_assessment_still_idle_after_rectification_opens_a_new_entry_superseding_it(campaign):
    rectified, _ = mark(idle(campaign), campaign)
    old_entry = rectified.open_ledger_entry
    after, events = assess(rectified, campaign, claimed_status=S.UNDERPERFORMING,
                           assessed_on=date(2024, 3, 20), attachment_hashes=())
    [added] = [x for x in events if isinstance(x, e.LedgerEntryAdded)]
    assert added.supersedes == old_entry and added.entry_id != old_entry
    assert after.open_ledger_entry == added.entry_id and not after.ledger_rectified
    # Without the rectification, the same finding would simply keep the entry open.
    _, plain = assess(idle(campaign), campaign, claimed_status=S.UNDERPERFORMING,
                      assessed_on=date(2024, 3, 20), attachment_hashes=())
    assert not [x for x in plain if isinstance(x, e.LedgerEntryAdded)]


def test_an_assessment_finding_it_operating_clears_the_rectified_entry(campaign):
    rectified, _ = mark(idle(campaign), campaign)
    after, events = assess(rectified, campaign, services=("meal_assistance", "day_care",
                                                          "rehabilitation"))
    assert [type(x) for x in events if isinstance(x, e.LedgerEntryCleared)] == [e.LedgerEntryCleared]
    assert not after.on_ledger and not after.ledger_rectified


def test_an_item_of_a_cleared_entry_covers_the_open_entry_of_the_same_reason(campaign):
    # Entry 1 cleared by an assessment while its item was still open; entry 2 (same reason) got
    # no item of its own (rectification opens one per project and reason): item 1 covers it.
    state = idle(campaign)
    first = state.open_ledger_entry
    state, _ = assess(state, campaign, services=("meal_assistance", "day_care", "rehabilitation"))
    state, _ = assess(state, campaign, claimed_status=S.NOT_OPERATING, attachment_hashes=())
    assert state.open_ledger_entry != first
    after, [event] = mark(state, campaign, entry_id=first)
    assert (event.entry_id, event.entry_open) == (state.open_ledger_entry, True)
    # An item of another reason does not: it is recorded on its own (cleared) entry only.
    _, [other] = mark(state, campaign, entry_id=first, reason="underperforming", problem_id="p-2")
    assert (other.entry_id, other.entry_open) == (first, False)
    assert not d.fold(state, [other]).ledger_rectified


def test_a_reopened_item_takes_the_rectified_mark_back(campaign):
    rectified, _ = mark(idle(campaign), campaign)

    def reopen(problem_id: str) -> list[Any]:
        return d.decide_reopen_ledger_rectification(rectified, c.ReopenLedgerRectification(
            project_id=rectified.project_id, entry_id=rectified.open_ledger_entry or "",
            problem_id=problem_id, new_problem_id="p-9", reason="反弹(示例)",
            reopening_event_id="event-reopen"), actor=SYSTEM_ACTOR, now=NOW, campaign=campaign)

    assert reopen("another-item") == []
    [event] = reopen("p-1")
    assert isinstance(event, e.LedgerRectificationReopened)
    assert not d.fold(rectified, [event]).ledger_rectified
