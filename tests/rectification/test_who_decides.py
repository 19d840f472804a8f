"""Every item always has someone who can decide it (DOMAIN.md §4, docs/adr/0012): every requester
against every decider, for close-outs (verify and return), extensions and withdrawals, written
out as a table from the rule's words, independently of the code:

- the requester never decides (谁整改谁申请, 谁验收谁负责);
- a self-found or ledger item is decided by the unit's reviewer; when the requester IS a reviewer
  of the unit (a small unit may have only one), the city bureau (city_admin) decides too;
- a city-found item by an inspector;
- extensions and withdrawals: the same authority, or city_admin whoever asked.
"""
from __future__ import annotations

from datetime import date

import pytest

from services.rectification import domain as d
from services.rectification import events as e
from shared.errors import ForbiddenError
from shared.messages import SYSTEM_ACTOR, Actor

from .support import AUDITOR, LEADER, Desk, at, city_admin, inspector, reporter, reviewer

pytestmark = pytest.mark.unit

NOW = at(2024, 3, 20)
UNIT = "echeng"
SELF, LEDGER, CITY = e.ProblemSource.SELF_INSPECTION, e.ProblemSource.LEDGER, e.ProblemSource.CITY

ACTORS: dict[str, Actor] = {
    "reporter": reporter(UNIT, 1), "another reporter": reporter(UNIT, 2),
    "reviewer": reviewer(UNIT, 1), "another reviewer": reviewer(UNIT, 2),
    "admin": city_admin(1), "another admin": city_admin(2),
    "inspector": inspector(1), "another inspector": inspector(2),
    "leader": LEADER, "auditor": AUDITOR,
    "other unit's reporter": reporter("huarong"), "other unit's reviewer": reviewer("huarong"),
    "system": SYSTEM_ACTOR,
}
OK, FORBIDDEN, FOUR_EYES = "ok", "forbidden", "four_eyes"


def allowed(*deciders: str, same: str | None = None) -> dict[str, str]:
    """Who may decide (ok); `same`: the requester, refused by four-eyes because they hold the
    authority themselves; everyone else: forbidden (403)."""
    table = dict.fromkeys(ACTORS, FORBIDDEN)
    table.update(dict.fromkeys(deciders, OK))
    if same is not None:
        table[same] = FOUR_EYES
    return table


# (source, requester) -> decider -> outcome. The "system" requests nothing itself; it registers
# automatic items (ledger, findings), which is what a withdrawal is judged against.
CLOSE_OUT = {
    (SELF, "reporter"): allowed("reviewer", "another reviewer"),
    (SELF, "reviewer"): allowed("another reviewer", "admin", "another admin", "system",
                                same="reviewer"),
    (SELF, "admin"): allowed("reviewer", "another reviewer"),
    (LEDGER, "reporter"): allowed("reviewer", "another reviewer"),
    (LEDGER, "reviewer"): allowed("another reviewer", "admin", "another admin", "system",
                                  same="reviewer"),
    (LEDGER, "admin"): allowed("reviewer", "another reviewer"),
    (CITY, "reporter"): allowed("inspector", "another inspector"),
    (CITY, "reviewer"): allowed("inspector", "another inspector"),
    (CITY, "admin"): allowed("inspector", "another inspector"),
}
EXTENSION = {
    (SELF, "reporter"): allowed("reviewer", "another reviewer", "admin", "another admin", "system"),
    (SELF, "reviewer"): allowed("another reviewer", "admin", "another admin", "system",
                                same="reviewer"),
    (SELF, "admin"): allowed("reviewer", "another reviewer", "another admin", "system",
                             same="admin"),
    (LEDGER, "reporter"): allowed("reviewer", "another reviewer", "admin", "another admin", "system"),
    (LEDGER, "reviewer"): allowed("another reviewer", "admin", "another admin", "system",
                                  same="reviewer"),
    (CITY, "reporter"): allowed("inspector", "another inspector", "admin", "another admin", "system"),
    (CITY, "reviewer"): allowed("inspector", "another inspector", "admin", "another admin", "system"),
    (CITY, "admin"): allowed("inspector", "another inspector", "another admin", "system",
                             same="admin"),
}
# (source, registrant) -> approver -> outcome
WITHDRAWAL = {
    (SELF, "reporter"): allowed("reviewer", "another reviewer", "admin", "another admin", "system"),
    (SELF, "reviewer"): allowed("another reviewer", "admin", "another admin", "system",
                                same="reviewer"),
    (SELF, "admin"): allowed("reviewer", "another reviewer", "another admin", "system",
                             same="admin"),
    (LEDGER, "system"): allowed("reviewer", "another reviewer", "admin", "another admin",
                                same="system"),
    (CITY, "inspector"): allowed("another inspector", "admin", "another admin", "system",
                                 same="inspector"),
    (CITY, "admin"): allowed("inspector", "another inspector", "another admin", "system",
                             same="admin"),
    (CITY, "system"): allowed("inspector", "another inspector", "admin", "another admin",
                              same="system"),
}


def outcome(decide) -> str:
    try:
        events = decide()
    except ForbiddenError:
        return FORBIDDEN
    except d.FourEyesError:
        return FOUR_EYES
    assert events, "a decision that is allowed records what was decided"
    return OK


def item(source: e.ProblemSource, registrant: str = "reporter") -> tuple[Desk, object]:
    desk = Desk()
    who = ACTORS[registrant]
    if source is CITY and registrant == "reporter":
        who = inspector(3)                                  # found by the city, worked by the unit
    elif source is LEDGER and registrant not in ("system", "admin"):
        who = SYSTEM_ACTOR                                  # the 台账 reaction registers it
    pid = desk.register(who, at(2024, 3, 10), unit=UNIT, source=source)
    return desk, pid


def cases(table):
    return [(source, requester, decider, expected)
            for (source, requester), deciders in table.items()
            for decider, expected in deciders.items()]


@pytest.mark.parametrize(("source", "requester", "decider", "expected"), cases(CLOSE_OUT))
@pytest.mark.parametrize("judgement", ["verify", "return"])
def test_who_may_verify_or_return_a_close_out(source, requester, decider, expected, judgement):
    desk, pid = item(source)
    desk.start(pid, reporter(UNIT), at(2024, 3, 11))
    desk.request(pid, ACTORS[requester], at(2024, 3, 12))
    act = desk.verify if judgement == "verify" else desk.return_
    assert outcome(lambda: act(pid, ACTORS[decider], NOW)) == expected
    if expected == OK and judgement == "verify":
        closed = desk.problem(pid)
        assert closed.status is d.ProblemStatus.CLOSED
        assert closed.verified_by == ACTORS[decider].id != closed.close_out_requested_by
        assert closed.verifier_role == str(ACTORS[decider].role)


@pytest.mark.parametrize(("source", "requester", "decider", "expected"), cases(EXTENSION))
def test_who_may_decide_an_extension(source, requester, decider, expected):
    desk, pid = item(source)
    desk.request_extension(pid, ACTORS[requester], at(2024, 3, 12))
    assert outcome(lambda: desk.decide_extension(pid, ACTORS[decider], NOW)) == expected


@pytest.mark.parametrize(("source", "registrant", "approver", "expected"), cases(WITHDRAWAL))
def test_who_may_approve_a_withdrawal(source, registrant, approver, expected):
    desk, pid = item(source, registrant)
    assert desk.problem(pid).registered_by == ACTORS[registrant].id
    assert outcome(lambda: desk.withdraw(pid, ACTORS[approver], NOW)) == expected


@pytest.mark.parametrize("table", [CLOSE_OUT, EXTENSION, WITHDRAWAL],
                         ids=["close-out", "extension", "withdrawal"])
def test_every_request_has_someone_other_than_its_requester_who_may_decide_it(table):
    for (source, requester), deciders in table.items():
        assert any(result == OK for who, result in deciders.items() if who != requester), \
            (source, requester)
        assert deciders.get(requester) != OK


def test_inspectors_leaders_and_auditors_never_ask_for_a_close_out():
    for who in ("inspector", "leader", "auditor"):
        desk, pid = item(SELF)
        desk.start(pid, reporter(UNIT), at(2024, 3, 11))
        with pytest.raises(ForbiddenError):
            desk.request(pid, ACTORS[who], at(2024, 3, 12))


def test_a_small_units_only_reviewer_asks_and_the_city_bureau_verifies():
    """The reported dead end (issue 12): 序号 8 stayed close_out_requested. Now the reviewer is
    told who decides, in Chinese, and the city bureau verifies."""
    desk, pid = item(LEDGER)
    only_reviewer = reviewer(UNIT)
    desk.start(pid, only_reviewer, at(2024, 3, 11))
    [requested] = desk.request(pid, only_reviewer, at(2024, 3, 12))
    assert requested.requester_role == "district_reviewer"
    with pytest.raises(d.FourEyesError) as refused:
        desk.verify(pid, only_reviewer, NOW)
    assert "市民政局" in refused.value.message_zh
    [verified] = desk.verify(pid, city_admin(), NOW)
    assert verified.verifier_role == "city_admin"


def test_a_close_out_recorded_before_the_role_was_carried_may_be_decided_by_the_city():
    desk, pid = item(SELF)
    desk.start(pid, reporter(UNIT), at(2024, 3, 11))
    desk.request(pid, reviewer(UNIT), at(2024, 3, 12))
    old = desk.problem(pid)
    legacy = d.ProblemState(**{**{f: getattr(old, f) for f in old.__slots__},
                               "close_out_requester_role": None})
    assert d.may_judge_close_out(legacy, city_admin())


def test_a_refusal_says_in_chinese_who_decides():
    desk, pid = item(CITY)
    desk.start(pid, reporter(UNIT), at(2024, 3, 11))
    desk.request(pid, reporter(UNIT), at(2024, 3, 12))
    with pytest.raises(ForbiddenError) as refused:
        desk.verify(pid, reviewer(UNIT), NOW)
    assert refused.value.message_zh == "市级检查发现的问题由市检查组人员核验销号，您的角色无权办理。"
    desk, pid = item(SELF)
    with pytest.raises(d.InvalidCommandError) as invalid:
        desk.request_extension(pid, reporter(UNIT), NOW, new_deadline=date(2024, 5, 7))
    assert invalid.value.message_zh == "延期后的整改限期须晚于现整改限期（2024年5月7日）。"
