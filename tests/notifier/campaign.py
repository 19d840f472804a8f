"""The Ezhou 2024 campaign as the other services would record it, day by day, and every message
the notifier must send for it (written out by hand from DOMAIN.md §6 and the campaign file).

The units: the registry's sample data (services/registry/seed.py) registers every unit's 附件1
leader and liaison on 03-05 at 10:00 (SEED_AS_OF), after the 09:00 T-1 reminder. Then:

- 3月清单 (due Mon 03-25): 鄂城 on 03-18; 华容 on 03-21 (after T-3); 梁子湖 on the day (all three
  reminders); 葛店 late on 03-26 (urged, and the leader told, on overdue day 1); 临空 on 03-22
  after the 09:00 T-1, returned by the city on 03-27 (re-armed: urged on 03-28, not escalated:
  day 1 had passed while it counted as submitted), resubmitted on 03-28.
- 4月清单 (due Thu 04-25): all on 04-19 but 华容, on 04-23, sent back by its reviewer on 04-24
  (T-1 of that morning is not sent late; T-0 is), resubmitted on 04-25.
- 自查报告 (due Tue 05-07): T-3 is 04-29, before the 5月1日至5日 holiday; 葛店 on 05-06 after T-1;
  临空 on Saturday 05-11 (a make-up working day), urged 05-08 to 05-11, the leader told on 05-08.
- 典型案例 (due Fri 05-31): all on 05-20 but 鄂城 (05-29, after T-3) and 华容 (sent back on 05-30:
  re-armed, T-0 sent on the last day).
- items: A (鄂城, due Mon 04-08: T-3 04-02 before 清明, T-1 Sunday 04-07) closed out on 04-07;
  B (华容, due Fri 04-05, a holiday: reminded 03-29, 04-02, 04-03; urged and escalated on Sunday
  04-07) close-out requested 04-07, returned 04-09 (urged again 04-10), requested 04-10;
  D (葛店, due Tue 04-30) extended on 04-26 to Tue 05-14 (T-3 Fri 05-10, T-1 Mon 05-13, as Saturday
  05-11 is T-2) and closed out on 05-13; E (临空, due 04-19) withdrawn on 04-17; C (梁子湖, a city
  finding due Mon 05-13, T-1 Saturday 05-11) closed out on 05-11, verified, and found again on
  05-20 (反弹): the new item C2 (due 05-27) is reminded 05-22 and 05-24 and closed out on 05-24.
- a city inspection visit to 葛店 on Mon 05-13, scheduled 05-09: announced on Saturday 05-11.
"""
from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx

from services.inspection import events as insp
from services.rectification import events as rect
from services.system import seed_if_empty
from shared.messages import Event
from shared.settings import Settings
from tests.notifier.support import Upstream, at, fetch, wait_idle, wait_settled

ITEM_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
ITEM_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
ITEM_C = uuid.UUID("00000000-0000-4000-8000-00000000000c")
ITEM_C2 = uuid.UUID("00000000-0000-4000-8000-0000000000c2")
ITEM_D = uuid.UUID("00000000-0000-4000-8000-00000000000d")
ITEM_E = uuid.UUID("00000000-0000-4000-8000-00000000000e")
UNITS = ("echeng", "huarong", "liangzihu", "gedian", "linkong")
DRAW = "ezhou-2024-city-01"
VISIT = "visit-gedian-01"


def _due(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=at(3, 4).tzinfo)


Append = tuple[str, Event]


def problem(item: uuid.UUID, unit: str, seq: int, due: date, registered: datetime, *,
            reopened_from: uuid.UUID | None = None) -> Append:
    return f"problem-{item}", rect.ProblemRegistered(
        problem_id=item, unit=unit, seq_no=seq, project_id=f"project-{unit}-{seq}",
        project_name=f"(示例){unit}项目{seq}", township="(示例)街道", project_year=2022,
        description="未开展助餐服务(示例)", deadline=due, deadline_kind=rect.DeadlineKind.DATE,
        responsible_person="(示例)责任人", source=rect.ProblemSource.SELF_INSPECTION,
        reopened_from=reopened_from, registered_by=f"{unit}-reporter", registered_at=registered)


def close_out(item: uuid.UUID, unit: str, moment: datetime) -> Append:
    return f"problem-{item}", rect.CloseOutRequested(
        problem_id=item, unit=unit, evidence_text="已整改(示例)", attachment_hashes=(),
        requested_by=f"{unit}-reporter", requested_at=moment)


def verified(item: uuid.UUID, unit: str, moment: datetime) -> Append:
    return f"problem-{item}", rect.CloseOutVerified(
        problem_id=item, unit=unit, verified_by=f"{unit}-reviewer",
        verifier_role="district_reviewer", conclusion="同意销号", verified_at=moment)


def returned(item: uuid.UUID, unit: str) -> Append:
    return f"problem-{item}", rect.CloseOutReturned(problem_id=item, unit=unit,
                                                    reason="证据不足(示例)", returned_by="reviewer")


def extended(item: uuid.UUID, unit: str, old: date, new: date) -> Append:
    return f"problem-{item}", rect.ExtensionDecided(
        problem_id=item, unit=unit, approved=True, requested_deadline=new, deadline=new,
        reason="需采购设备(示例)", decided_by="admin-1")


def withdrawn(item: uuid.UUID, unit: str, moment: datetime) -> Append:
    return f"problem-{item}", rect.ProblemWithdrawn(
        problem_id=item, unit=unit, reason="重复登记(示例)", approved_by="admin-1",
        approver="市局管理员(示例)", withdrawn_at=moment)


def reopened(item: uuid.UUID, unit: str, new_item: uuid.UUID) -> Append:
    return f"problem-{item}", rect.ProblemReopened(problem_id=item, unit=unit,
                                                   new_problem_id=new_item, reason="反弹(示例)",
                                                   reopened_by="inspector-1")


def monthly(unit: str, month: str, moment: datetime, version: int = 1) -> Append:
    report_id = f"{unit}-monthly_list-{month}"
    due = _due(date(2024, 3, 25) if month == "2024-03" else date(2024, 4, 25))
    return f"report-{report_id}", rect.MonthlyListSubmitted(
        report_id=report_id, unit=unit, month=month, version=version, rows=(),
        submitted_by=f"{unit}-reporter", submitter="(示例)填报人", submitted_at=moment, due=due,
        late=moment > due)


def monthly_returned_by_city(unit: str, month: str) -> Append:
    report_id = f"{unit}-monthly_list-{month}"
    return f"report-{report_id}", rect.MonthlyListReturned(
        report_id=report_id, unit=unit, month=month, version=1, comment="缺少整改措施(示例)",
        returned_by="admin-1")


def sent_back(report_id: str, unit: str, kind: rect.ReportKind, moment: datetime) -> Append:
    return f"report-{report_id}", rect.ReportReviewed(
        report_id=report_id, unit=unit, kind=kind, version=1, approved=False,
        comment="请补充材料(示例)", reviewed_by=f"{unit}-reviewer", reviewer="(示例)审核人",
        reviewed_at=moment)


def self_report(unit: str, moment: datetime) -> Append:
    report_id = f"{unit}-self_inspection_report"
    due = _due(date(2024, 5, 7))
    return f"report-{report_id}", rect.SelfInspectionReportSubmitted(
        report_id=report_id, unit=unit, version=1, text="自查报告(示例)", attachment_hashes=(),
        submitted_by=f"{unit}-reporter", submitter="(示例)填报人", submitted_at=moment, due=due,
        late=moment > due)


def typical_case(unit: str, moment: datetime) -> Append:
    report_id = f"{unit}-typical_case-1"
    due = _due(date(2024, 5, 31))
    return f"report-{report_id}", rect.TypicalCaseSubmitted(
        report_id=report_id, unit=unit, version=1, title="典型案例(示例)", text="(示例)",
        attachment_hashes=(), submitted_by=f"{unit}-reporter", submitter="(示例)填报人",
        submitted_at=moment, due=due, late=moment > due)


def visit_scheduled(unit: str, day: date) -> Append:
    return f"draw-{DRAW}", insp.VisitScheduled(
        draw_id=DRAW, visit_id=VISIT, target_kind=insp.TargetKind.PROJECT,
        target_id=f"project-{unit}-x", unit=unit, project_type="canteen", scheduled_for=day,
        inspector_ids=["insp-1"])


def visit_recorded(unit: str, day: date) -> Append:
    return f"draw-{DRAW}", insp.VisitRecorded(
        draw_id=DRAW, visit_id=VISIT, target_kind=insp.TargetKind.PROJECT,
        target_id=f"project-{unit}-x", unit=unit, project_type="canteen",
        outcome=insp.VisitOutcome.PASSED, inspector_ids=["insp-1"], visited_on=day, checklist=[])


@dataclass
class Action:
    moment: datetime
    events: list[Append] = field(default_factory=list)
    seed: bool = False


def script() -> list[Action]:
    a = Action
    return sorted([
        a(at(3, 5, 10), seed=True),
        a(at(3, 15, 10), [problem(ITEM_B, "huarong", 1, date(2024, 4, 5), at(3, 15, 10))]),
        a(at(3, 18, 10), [monthly("echeng", "2024-03", at(3, 18, 10))]),
        a(at(3, 20, 10), [problem(ITEM_A, "echeng", 1, date(2024, 4, 8), at(3, 20, 10))]),
        a(at(3, 21, 10), [monthly("huarong", "2024-03", at(3, 21, 10))]),
        a(at(3, 22, 10), [monthly("linkong", "2024-03", at(3, 22, 10))]),
        a(at(3, 25, 10), [monthly("liangzihu", "2024-03", at(3, 25, 10))]),
        a(at(3, 26, 15), [monthly("gedian", "2024-03", at(3, 26, 15))]),
        a(at(3, 27, 10), [monthly_returned_by_city("linkong", "2024-03")]),
        a(at(3, 28, 15), [monthly("linkong", "2024-03", at(3, 28, 15), version=2)]),
        a(at(4, 7, 15), [close_out(ITEM_A, "echeng", at(4, 7, 15)),
                         close_out(ITEM_B, "huarong", at(4, 7, 15))]),
        a(at(4, 9, 10), [verified(ITEM_A, "echeng", at(4, 9, 10)), returned(ITEM_B, "huarong")]),
        a(at(4, 10, 10), [problem(ITEM_E, "linkong", 1, date(2024, 4, 19), at(4, 10, 10))]),
        a(at(4, 10, 14), [close_out(ITEM_B, "huarong", at(4, 10, 14))]),
        a(at(4, 11, 10), [verified(ITEM_B, "huarong", at(4, 11, 10))]),
        a(at(4, 15, 10), [problem(ITEM_D, "gedian", 1, date(2024, 4, 30), at(4, 15, 10))]),
        a(at(4, 17, 10), [withdrawn(ITEM_E, "linkong", at(4, 17, 10))]),
        a(at(4, 19, 10), [monthly(u, "2024-04", at(4, 19, 10)) for u in UNITS if u != "huarong"]),
        a(at(4, 23, 10), [monthly("huarong", "2024-04", at(4, 23, 10))]),
        a(at(4, 24, 11), [sent_back("huarong-monthly_list-2024-04", "huarong",
                                    rect.ReportKind.MONTHLY_LIST, at(4, 24, 11))]),
        a(at(4, 25, 16), [monthly("huarong", "2024-04", at(4, 25, 16), version=2)]),
        a(at(4, 26, 10), [self_report(u, at(4, 26, 10)) for u in ("echeng", "huarong", "liangzihu")]),
        a(at(4, 26, 15), [extended(ITEM_D, "gedian", date(2024, 4, 30), date(2024, 5, 14))]),
        a(at(5, 6, 15), [self_report("gedian", at(5, 6, 15))]),
        a(at(5, 8, 10), [problem(ITEM_C, "liangzihu", 1, date(2024, 5, 13), at(5, 8, 10))]),
        a(at(5, 9, 10), [visit_scheduled("gedian", date(2024, 5, 13))]),
        a(at(5, 11, 11), [self_report("linkong", at(5, 11, 11))]),
        a(at(5, 11, 16), [close_out(ITEM_C, "liangzihu", at(5, 11, 16))]),
        a(at(5, 13, 15), [visit_recorded("gedian", date(2024, 5, 13))]),
        a(at(5, 13, 16), [close_out(ITEM_D, "gedian", at(5, 13, 16))]),
        a(at(5, 14, 10), [verified(ITEM_C, "liangzihu", at(5, 14, 10))]),
        a(at(5, 20, 10), [typical_case(u, at(5, 20, 10)) for u in UNITS if u != "echeng"]),
        a(at(5, 20, 11), [reopened(ITEM_C, "liangzihu", ITEM_C2),
                          problem(ITEM_C2, "liangzihu", 2, date(2024, 5, 27), at(5, 20, 11),
                                  reopened_from=ITEM_C)]),
        a(at(5, 24, 15), [close_out(ITEM_C2, "liangzihu", at(5, 24, 15))]),
        a(at(5, 29, 10), [typical_case("echeng", at(5, 29, 10))]),
        a(at(5, 30, 10), [sent_back("huarong-typical_case-1", "huarong",
                                    rect.ReportKind.TYPICAL_CASE, at(5, 30, 10))]),
    ], key=lambda action: action.moment)


def _to(role: str, unit: str) -> str:
    return f"{role}.{unit}@example.invalid"


L, LEAD = "liaison", "leader"
R, U, E = "reminder", "urging", "escalation"
LIST, REPORT, CASE, ITEM, VISIT_KIND, LIAISONS = ("monthly_problem_list", "self_inspection_report",
                                                  "typical_case", "problem", "visit", "liaisons")

# (date, time, recipient, reminder kind, obligation kind), sorted: what the SMTP server receives.
EXPECTED = sorted([
    *[("03-05", "09:00", _to(L, u), R, LIAISONS) for u in UNITS],
    *[("03-20", "09:00", _to(L, u), R, LIST) for u in ("huarong", "liangzihu", "gedian", "linkong")],
    *[("03-22", "09:00", _to(L, u), R, LIST) for u in ("liangzihu", "gedian", "linkong")],
    *[("03-25", "09:00", _to(L, u), R, LIST) for u in ("liangzihu", "gedian")],
    ("03-26", "09:00", _to(L, "gedian"), U, LIST),
    ("03-26", "09:00", _to(LEAD, "gedian"), E, LIST),
    ("03-28", "09:00", _to(L, "linkong"), U, LIST),
    ("03-29", "09:00", _to(L, "huarong"), R, ITEM),
    ("04-02", "09:00", _to(L, "echeng"), R, ITEM),
    ("04-02", "09:00", _to(L, "huarong"), R, ITEM),
    ("04-03", "09:00", _to(L, "huarong"), R, ITEM),
    ("04-07", "09:00", _to(L, "echeng"), R, ITEM),
    ("04-07", "09:00", _to(L, "huarong"), U, ITEM),
    ("04-07", "09:00", _to(LEAD, "huarong"), E, ITEM),
    ("04-10", "09:00", _to(L, "huarong"), U, ITEM),
    ("04-16", "09:00", _to(L, "linkong"), R, ITEM),
    ("04-22", "09:00", _to(L, "huarong"), R, LIST),
    ("04-25", "09:00", _to(L, "huarong"), R, LIST),
    ("04-26", "09:00", _to(L, "gedian"), R, ITEM),
    *[("04-29", "09:00", _to(L, u), R, REPORT) for u in ("gedian", "linkong")],
    *[("05-06", "09:00", _to(L, u), R, REPORT) for u in ("gedian", "linkong")],
    ("05-07", "09:00", _to(L, "linkong"), R, REPORT),
    ("05-08", "09:00", _to(L, "linkong"), U, REPORT),
    ("05-08", "09:00", _to(LEAD, "linkong"), E, REPORT),
    ("05-09", "09:00", _to(L, "linkong"), U, REPORT),
    ("05-09", "09:00", _to(L, "liangzihu"), R, ITEM),
    ("05-10", "09:00", _to(L, "linkong"), U, REPORT),
    ("05-10", "09:00", _to(L, "gedian"), R, ITEM),
    ("05-11", "09:00", _to(L, "linkong"), U, REPORT),
    ("05-11", "09:00", _to(L, "liangzihu"), R, ITEM),
    ("05-11", "09:00", _to(L, "gedian"), R, VISIT_KIND),
    ("05-13", "09:00", _to(L, "gedian"), R, ITEM),
    ("05-22", "09:00", _to(L, "liangzihu"), R, ITEM),
    ("05-24", "09:00", _to(L, "liangzihu"), R, ITEM),
    ("05-28", "09:00", _to(L, "echeng"), R, CASE),
    ("05-31", "09:00", _to(L, "huarong"), R, CASE),
])


MoveClock = Callable[[datetime], Awaitable[None]]


async def perform(action: Action, dsn: str, upstream: Upstream) -> list[uuid.UUID]:
    """Append the action's events as their services would; the ids the notifier must handle."""
    if action.seed:
        await seed_if_empty(Settings(database_url=dsn))
        rows = await fetch(dsn, "SELECT event_id FROM es.events "
                                "WHERE event_type = 'registry.LiaisonRegistered'")
        return [row["event_id"] for row in rows]
    before = len(upstream.appended)
    for stream_id, event in action.events:
        await upstream.append(stream_id, event, occurred_at=action.moment)
    return upstream.appended[before:]


async def run_campaign(dsn: str, client: httpx.AsyncClient, move_clock: MoveClock,
                       upstream: Upstream) -> None:
    """Every day from 03-04 to 05-31: 09:00 (the send time) and each action of the day in turn;
    after each move, wait until the notifier has taken in the day's facts and sent what is due."""
    actions = script()
    day = date(2024, 3, 4)
    while day <= date(2024, 5, 31):
        await move_clock(at(day.month, day.day, 9))
        await wait_idle(client, what=f"the reminders of {day}")
        for action in (a for a in actions if a.moment.date() == day):
            await move_clock(action.moment)
            handled = await perform(action, dsn, upstream)
            await wait_settled(dsn, handled, what=f"the facts of {action.moment}")
            await wait_idle(client, what=f"after the facts of {action.moment}")
        day += timedelta(days=1)
