"""The rectification service's command table: for each command, the streams it decides on, what it
reads besides them, and the pure decision.

The kernel's pipeline (shared/pipeline.py) runs every row the same way: authorize, prepare, load,
decide, append with the expected versions, retry a conflict, envelope, log, count. A unit's 序号
counter is the hot stream here (every registration in the unit writes it): it is read at its head
version only (`unit_counter_spec`), so allocating costs the same however many items the unit has;
the kernel's retry bound says why five rounds cover a race on it.

Some decisions write several streams, in one atomic append, routed by `domain.stream_id_for`:
- a registration writes the item AND its unit's counter `unit-<code>`. The unit is the project's:
  `prepare` reads it (this service's view of the registry, or the 台账 entry / finding itself)
  and includes the counter;
- a 反弹 writes the original, the counter and the new item. The unit is the original's, known
  once its stream is read: `prepare` includes the counter then.

What a decision needs besides its streams comes from `prepare`, inside the command's transaction:
the project and the evidence-reuse index from the read model (a reuse flag is a warning, a moment
of lag is acceptable), and from the store itself what must not be judged from a read model that
may lag: a project's open ledger items, a monthly list's snapshot (a filed document), a unit's
items and reports for the deduction check (a deduction is irrevocable). Streams a decision only
reads are folded with `Preparation.include` and never written.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import queries as q
from services.rectification import scoring as s
from services.rectification.config import RectificationConfig
from shared.errors import NotFoundError
from shared.logging import get_logger
from shared.messages import Actor, Event, Role
from shared.pipeline import CommandPipeline, CommandTable, Decision, Handler, Preparation, StreamSpec

log = get_logger()

Rectifying = Decision[Any, Any, RectificationConfig]
Preparing = Preparation[Any, RectificationConfig]
Streams = list[StreamSpec[Any]]


# ----- which streams ------------------------------------------------------------------------------


def the_item(cmd: Any, _: RectificationConfig) -> Streams:
    return [d.problem_spec(cmd.problem_id)]


def original_and_successor(cmd: c.ReopenProblem, _: RectificationConfig) -> Streams:
    return [d.problem_spec(cmd.problem_id), d.problem_spec(cmd.new_problem_id)]


def ledger_item(cmd: c.OpenLedgerItem, _: RectificationConfig) -> Streams:
    return [d.problem_spec(d.ledger_problem_id(cmd.entry_id)), d.unit_counter_spec(cmd.unit)]


def finding_item(cmd: c.OpenFindingItem, _: RectificationConfig) -> Streams:
    return [d.problem_spec(d.finding_problem_id(cmd.finding_id))]


def monthly_list(cmd: c.SubmitMonthlyList | c.ReturnMonthlyList, _: RectificationConfig) -> Streams:
    return [d.report_spec(d.monthly_list_report_id(cmd.unit, cmd.month))]


def self_inspection_report(cmd: c.SubmitSelfInspectionReport, _: RectificationConfig) -> Streams:
    return [d.report_spec(d.self_inspection_report_id(cmd.unit))]


def work_plan(cmd: c.SubmitWorkPlan, _: RectificationConfig) -> Streams:
    return [d.report_spec(d.work_plan_report_id(cmd.unit))]


def typical_case(cmd: c.SubmitTypicalCase, _: RectificationConfig) -> Streams:
    return [d.report_spec(d.typical_case_report_id(cmd.unit, cmd.case_id))]


def the_report(cmd: c.ReviewReport, _: RectificationConfig) -> Streams:
    return [d.report_spec(cmd.report_id)]


def unit_score(cmd: c.DeductPoints | c.ApplyDeductions, _: RectificationConfig) -> Streams:
    return [s.score_spec(cmd.unit)]


# ----- what else a decision reads -------------------------------------------------------------------


async def known_project(p: Preparing) -> d.ProjectRef:
    """The project an item is registered for (this service's view of the registry); its unit's
    counter joins the decision."""
    cmd: c.RegisterProblem = p.command
    project = await q.project_ref(p.conn, cmd.project_id)
    if project is None:
        raise NotFoundError(f"unknown project {cmd.project_id}: a problem needs a known project",
                            zh=d.UNKNOWN_PROJECT_ZH)
    await p.include(d.unit_counter_spec(project.unit))
    return project


async def finding_project(p: Preparing) -> d.ProjectRef:
    """This service's view of the finding's project if it has one; else the finding's own project
    fields (the registry's events travel on another queue and may not have arrived yet). Its
    unit's counter joins the decision."""
    cmd: c.OpenFindingItem = p.command
    known = await q.project_ref(p.conn, cmd.project_id)
    year = (known.year if known else 0) or cmd.project_year or 0
    if year == 0:
        log.warning("finding_without_project_year", finding_id=cmd.finding_id,
                    project_id=cmd.project_id)
    project = d.ProjectRef(
        project_id=cmd.project_id, unit=known.unit if known else cmd.unit,
        township=known.township if known else cmd.township,
        name=known.name if known and known.name else cmd.project_name, year=year)
    await p.include(d.unit_counter_spec(project.unit))
    return project


async def ledger_items_of_project(p: Preparing) -> tuple[d.ProblemState, ...]:
    """Every ledger item of the project, folded from the store: an open one blocks a new item."""
    cmd: c.OpenLedgerItem = p.command
    return tuple([await p.include(d.problem_spec(problem_id))
                  for problem_id in await q.ledger_item_ids(p.conn, cmd.project_id)])


async def evidence_filed_before(p: Preparing) -> dict[str, set[uuid.UUID]]:
    cmd: c.RequestCloseOut = p.command
    return await q.evidence_index(p.conn, cmd.attachment_hashes)


async def originals_counter(p: Preparing) -> None:
    """A 反弹 takes the next 序号 of the original's unit: its counter joins the decision."""
    cmd: c.ReopenProblem = p.command
    original: d.ProblemState = p.states[d.problem_stream_id(cmd.problem_id)]
    if not original.is_registered:
        raise NotFoundError(f"problem {cmd.problem_id} is not registered",
                            zh="未找到要登记反弹的原问题，请核对问题编号。")
    await p.include(d.unit_counter_spec(original.unit))


async def unit_items(p: Preparing, unit: str) -> list[d.ProblemState]:
    """Every item of a unit, folded from the store: its counter names every item ever registered."""
    counter = await p.include(d.unit_spec(unit))
    return [await p.include(d.problem_spec(problem_id)) for problem_id in counter.allocations]


async def list_snapshot(p: Preparing) -> tuple[e.ProblemListRow, ...]:
    """The rows a monthly list freezes: the unit's items as the store has them (an item nobody
    named a 责任人 for shows the unit's 责任领导 as this service knows it then)."""
    cmd: c.SubmitMonthlyList = p.command
    leaders = await q.responsible_leaders(p.conn, [cmd.unit])
    return d.problem_list_rows(await unit_items(p, cmd.unit), unit=cmd.unit,
                               responsible_leader=leaders.get(cmd.unit, ""))


@dataclass(frozen=True)
class UnitRecord:
    """What the deduction rules judge a unit by: its items and its reports, from the store, and
    when its 附件1 was complete, from this service's view of the registry's LiaisonRegistered (a
    view that lags can only delay that moment: a deduction it causes is refunded when the
    on-time filing shows up, `scoring.decide_refunds`)."""

    items: tuple[d.ProblemState, ...]
    reports: tuple[d.ReportState, ...]
    liaisons_at: datetime | None = None


async def unit_record(p: Preparing) -> UnitRecord:
    cmd: c.ApplyDeductions = p.command
    items = await unit_items(p, cmd.unit)
    reports = [await p.include(d.report_spec(report_id))
               for report_id in await q.unit_report_ids(p.conn, cmd.unit)]
    liaisons_at = (await q.liaisons_complete_at(p.conn, [cmd.unit])).get(cmd.unit)
    return UnitRecord(tuple(items), tuple(reports), liaisons_at)


# ----- decisions --------------------------------------------------------------------------------------


def alone(decide: Callable[..., list[Event]]) -> Callable[[Rectifying], list[Event]]:
    """A decision on the one stream the command names."""
    return lambda x: decide(x.only_state, x.command, actor=x.actor, now=x.now)


def by_the_rules(decide: Callable[..., list[Event]]) -> Callable[[Rectifying], list[Event]]:
    """A decision on the one stream the command names, by the campaign's rules."""
    return lambda x: decide(x.only_state, x.command, actor=x.actor, now=x.now, rules=x.deps.rules)


def register(x: Decision[c.RegisterProblem, d.ProjectRef, RectificationConfig]) -> list[Event]:
    project = x.inputs
    return d.decide_register_problem(
        x.state(d.problem_stream_id(x.command.problem_id)), x.state(d.unit_stream_id(project.unit)),
        x.command, project=project, actor=x.actor, now=x.now, rules=x.deps.rules)


def open_ledger_item(x: Decision[c.OpenLedgerItem, tuple[d.ProblemState, ...], RectificationConfig]
                     ) -> list[Event]:
    cmd = x.command
    return d.decide_open_ledger_item(
        x.state(d.problem_stream_id(d.ledger_problem_id(cmd.entry_id))),
        x.state(d.unit_stream_id(cmd.unit)), cmd, ledger_items=x.inputs, actor=x.actor,
        now=x.now, rules=x.deps.rules, describe=x.deps.describe_reason)


def open_finding_item(x: Decision[c.OpenFindingItem, d.ProjectRef, RectificationConfig]
                      ) -> list[Event]:
    project = x.inputs
    return d.decide_open_finding_item(
        x.state(d.problem_stream_id(d.finding_problem_id(x.command.finding_id))),
        x.state(d.unit_stream_id(project.unit)), x.command, project=project, actor=x.actor,
        now=x.now, rules=x.deps.rules)


def request_close_out(x: Decision[c.RequestCloseOut, dict[str, set[uuid.UUID]],
                                  RectificationConfig]) -> list[Event]:
    return d.decide_request_close_out(x.only_state, x.command, actor=x.actor, now=x.now,
                                      evidence_index=x.inputs)


def reopen(x: Decision[c.ReopenProblem, None, RectificationConfig]) -> list[Event]:
    original: d.ProblemState = x.state(d.problem_stream_id(x.command.problem_id))
    events = d.decide_reopen_problem(original, x.state(d.unit_stream_id(original.unit)),
                                     x.command, actor=x.actor, now=x.now, rules=x.deps.rules)
    # The counter is read at its head (no `allocations`): the successor's own stream says
    # whether a new reopening would take an id that is already an item.
    if events and x.state(d.problem_stream_id(x.command.new_problem_id)).is_registered:
        raise d.InvalidCommandError(f"problem id {x.command.new_problem_id} is already taken",
                                    zh="新问题编号已被使用，请重新提交（系统会生成新的编号）。")
    return events


def submit_monthly_list(x: Decision[c.SubmitMonthlyList, tuple[e.ProblemListRow, ...],
                                    RectificationConfig]) -> list[Event]:
    cmd = x.command
    report = x.state(d.report_stream_id(d.monthly_list_report_id(cmd.unit, cmd.month)))
    return d.decide_submit_monthly_list(report, cmd, rows=x.inputs, actor=x.actor, now=x.now,
                                        rules=x.deps.rules)


def deduct(x: Decision[c.DeductPoints, None, RectificationConfig]) -> list[Event]:
    return list(s.decide_discretionary_deduction(x.only_state, x.command, actor=x.actor,
                                                 now=x.now))


def due_deductions(x: Decision[c.ApplyDeductions, UnitRecord, RectificationConfig]) -> list[Event]:
    """The campaign's deduction rules applied to what has happened by now; an occurrence already
    deducted is never deducted again (the score stream remembers it), and a deduction whose
    occurrence no longer holds is refunded (a compensating event)."""
    unit, config, record = x.command.unit, x.deps, x.inputs
    occurrences = s.triggers_due(unit, items=record.items, reports=record.reports, now=x.now,
                                 deduction_rules=config.deduction_rules, rules=config.rules,
                                 liaisons_at=record.liaisons_at)
    score = x.state(d.score_stream_id(unit))
    return s.decide_score_check(score, occurrences, config.deduction_rules, items=record.items)


def deduction_id(event: Event) -> uuid.UUID:
    """A deduction's (or refund's) id is its content (unit, rule, occurrence): two checks running
    at once (two replicas, the timer and the route) append it once; the store recognises a
    repeat."""
    assert isinstance(event, e.PointsDeducted | e.PointsRefunded)
    return s.deduction_event_id(event)


# ----- the table ----------------------------------------------------------------------------------

REPORTER = frozenset({Role.DISTRICT_REPORTER})
REVIEWER = frozenset({Role.DISTRICT_REVIEWER})
CITY_ADMIN = frozenset({Role.CITY_ADMIN})   # the system actor acts as city_admin too

COMMANDS: CommandTable = {
    # problem items: registration and the 销号 life cycle
    c.RegisterProblem: Handler(streams=the_item, prepare=known_project, decide=register,
                               route=d.stream_id_for),
    c.OpenLedgerItem: Handler(streams=ledger_item, prepare=ledger_items_of_project,
                              decide=open_ledger_item, route=d.stream_id_for),
    c.OpenFindingItem: Handler(streams=finding_item, prepare=finding_project,
                               decide=open_finding_item, route=d.stream_id_for),
    c.StartRectification: Handler(streams=the_item, decide=alone(d.decide_start_rectification)),
    c.RequestCloseOut: Handler(streams=the_item, prepare=evidence_filed_before,
                               decide=request_close_out),
    c.VerifyCloseOut: Handler(streams=the_item, decide=alone(d.decide_verify_close_out)),
    c.ReturnCloseOut: Handler(streams=the_item, decide=alone(d.decide_return_close_out)),
    c.RequestExtension: Handler(streams=the_item, decide=alone(d.decide_request_extension)),
    c.DecideExtension: Handler(streams=the_item, decide=alone(d.decide_extension)),
    c.WithdrawProblem: Handler(streams=the_item, decide=alone(d.decide_withdraw_problem)),
    c.ReopenProblem: Handler(streams=original_and_successor, prepare=originals_counter,
                             decide=reopen, route=d.stream_id_for),
    # a unit's reports
    c.SubmitMonthlyList: Handler(streams=monthly_list, prepare=list_snapshot,
                                 decide=submit_monthly_list, route=d.stream_id_for,
                                 roles=REPORTER),
    c.ReturnMonthlyList: Handler(streams=monthly_list, decide=alone(d.decide_return_monthly_list),
                                 roles=CITY_ADMIN),
    c.SubmitSelfInspectionReport: Handler(streams=self_inspection_report, roles=REPORTER,
                                          decide=by_the_rules(d.decide_submit_self_inspection_report)),
    c.SubmitWorkPlan: Handler(streams=work_plan, roles=REPORTER,
                              decide=by_the_rules(d.decide_submit_work_plan)),
    c.SubmitTypicalCase: Handler(streams=typical_case, roles=REPORTER,
                                 decide=by_the_rules(d.decide_submit_typical_case)),
    c.ReviewReport: Handler(streams=the_report, decide=alone(d.decide_review_report),
                            roles=REVIEWER),
    # scores
    c.DeductPoints: Handler(streams=unit_score, decide=deduct, event_id=deduction_id,
                            roles=CITY_ADMIN),
    c.ApplyDeductions: Handler(streams=unit_score, prepare=unit_record, decide=due_deductions,
                               route=d.stream_id_for, event_id=deduction_id, roles=CITY_ADMIN),
}


async def apply_deductions(commands: CommandPipeline[RectificationConfig], *, actor: Actor,
                           now: datetime, correlation_id: uuid.UUID | None = None,
                           units: Sequence[str] | None = None,
                           ) -> list[e.PointsDeducted | e.PointsRefunded]:
    """The deduction check (the scorekeeper's timer and `POST /scores/check`): one ApplyDeductions
    per unit, each its own transaction, all as of the same `now`. The refunds and deductions it
    recorded."""
    decided: list[e.PointsDeducted | e.PointsRefunded] = []
    for unit in units if units is not None else commands.deps.units:
        result = await commands.run(c.ApplyDeductions(unit=unit), actor=actor, now=now,
                                    correlation_id=correlation_id)
        decided += [*result.events_of(e.PointsRefunded), *result.events_of(e.PointsDeducted)]
    if decided:
        log.info("points_deducted", count=len(decided),
                 units=sorted({event.unit for event in decided}))
    return decided
