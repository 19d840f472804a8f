"""Use cases of the rectification service: load the streams a decision needs, decide, append.

One decision may touch several streams (registering writes `problem-<id>` AND the unit's 序号
counter `unit-<code>`; a 反弹 writes the original, the counter and the new item), so the
`shared.handling.execute_streams` is the multi-stream sibling of `shared.handling.execute`: it loads every
stream the decision may write, calls the pure `decide`, routes each event to its stream with
`domain.stream_id_for`, and appends them all in ONE `store.append` with an expected version per
stream. A concurrent writer of any of them makes the whole append fail before anything is written;
we then reload and decide again, a bounded number of times.

The routes (api.py) and the reactions (subscribers.py) call the functions here; none of them
knows about HTTP or the bus.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

import asyncpg

from shared import handling
from shared.consuming import HandlerContext
from shared.errors import DomainError, NotFoundError
from shared.handling import MultiOutcome, StreamSpec, load
from shared.logging import get_logger
from shared.messages import SYSTEM_ACTOR, Actor, Event, deterministic_id
from shared.store import EventStore

from . import commands as c
from . import domain as d
from . import events as e
from . import scoring as s
from .events import REGISTRY, ReportKind

log = get_logger()


# ------------------------------------------------------------------------------------------
# Several streams, one atomic append


EventIds = Callable[[int, Event], uuid.UUID]

# A unit's 序号 counter is written by every registration in that unit, so it is the hot stream
# here. Each round of a race has one winner, so n registrations racing need up to n rounds; five
# covers what people and the two subscribers do at once, a longer race is answered with 409.
CONCURRENCY_RETRIES = 5


async def execute_streams(store: EventStore, streams: Sequence[StreamSpec], *,
                          decide: Callable[[Mapping[str, Any]], Sequence[Event]], actor: Actor,
                          now: datetime, route: Callable[[Event], str] = d.stream_id_for,
                          correlation_id: uuid.UUID | None = None,
                          causation_id: uuid.UUID | None = None, conn: Any = None,
                          event_ids: EventIds | None = None) -> MultiOutcome:
    """shared.handling.execute_streams with this service's event registry, routing and retries."""
    return await handling.execute_streams(
        store, REGISTRY, streams, decide=decide, route=route, actor=actor, now=now,
        correlation_id=correlation_id, causation_id=causation_id, conn=conn,
        event_ids=event_ids, retries=CONCURRENCY_RETRIES)


def reaction_event_ids(ctx: HandlerContext) -> EventIds:
    """Ids of the events a reaction appends, derived from the delivery it reacts to."""
    cause = str(ctx.delivery.event_id)
    return lambda i, _event: deterministic_id("rectification", "reaction", cause, str(i))


# ------------------------------------------------------------------------------------------
# Stream specs


def problem_spec(problem_id: uuid.UUID) -> StreamSpec:
    return StreamSpec(d.problem_stream_id(problem_id), d.evolve, d.ProblemState(problem_id=problem_id))


def unit_spec(unit: str) -> StreamSpec:
    return StreamSpec(d.unit_stream_id(unit), d.evolve_sequence, d.UnitSequenceState(unit=unit))


def score_spec(unit: str) -> StreamSpec:
    return StreamSpec(d.score_stream_id(unit), s.evolve_score, s.ScoreState(unit=unit))


def report_initial(report_id: str) -> d.ReportState:
    """The empty state of a report from its id (`<unit>-<kind>[-<period>]`; unit codes and kinds
    have no hyphen). NotFoundError for an id that is no report id."""
    unit, _, rest = report_id.partition("-")
    kind_text, _, period = rest.partition("-")
    try:
        kind = ReportKind(kind_text)
    except ValueError:
        raise NotFoundError(f"no report {report_id}") from None
    if not unit or (kind is ReportKind.SELF_INSPECTION_REPORT) == bool(period):
        raise NotFoundError(f"no report {report_id}")
    return d.new_report(report_id, kind, unit, period)


def report_spec(report_id: str) -> StreamSpec:
    return StreamSpec(d.report_stream_id(report_id), d.evolve_report, report_initial(report_id))


async def load_problem(store: EventStore, problem_id: uuid.UUID, *, conn: Any = None
                       ) -> d.ProblemState:
    spec = problem_spec(problem_id)
    state, _ = await load(store, REGISTRY, spec.stream_id, spec.evolve, spec.initial, conn=conn)
    return state


async def load_report(store: EventStore, report_id: str, *, conn: Any = None) -> d.ReportState:
    spec = report_spec(report_id)
    state, _ = await load(store, REGISTRY, spec.stream_id, spec.evolve, spec.initial, conn=conn)
    return state


async def load_unit_items(store: EventStore, unit: str, *, conn: Any = None) -> list[d.ProblemState]:
    """Every item of a unit, folded from the store (authoritative, not the read model): the
    unit's counter stream names every item ever registered there."""
    spec = unit_spec(unit)
    sequence, _ = await load(store, REGISTRY, spec.stream_id, spec.evolve, spec.initial, conn=conn)
    return [await load_problem(store, problem_id, conn=conn) for problem_id in sequence.allocations]


async def load_unit_reports(store: EventStore, pool: asyncpg.Pool, unit: str
                            ) -> list[d.ReportState]:
    """Every report of a unit, folded from the store. The store port has no "streams by prefix"
    read, so the ids come from the store's stream catalogue (`es.streams`, readable by every
    service role); typical-case ids are the caller's, so they can't be derived."""
    prefix = d.report_stream_id(f"{unit}-")
    rows = await pool.fetch(
        "SELECT stream_id FROM es.streams WHERE left(stream_id, length($1)) = $1 ORDER BY 1", prefix)
    return [await load_report(store, row["stream_id"][len("report-"):]) for row in rows]


# ------------------------------------------------------------------------------------------
# Problem items


def _four_eyes_is_a_conflict(fn: Callable[[], Sequence[Event]]) -> Sequence[Event]:
    """A broken four-eyes rule is a conflict with the item's own history (the actor holds the
    authority but asked for this himself): HTTP 409, not 403, so the domain's FourEyesError
    (a ForbiddenError) is re-raised as a DomainError with its own code."""
    try:
        return fn()
    except d.FourEyesError as exc:
        raise DomainError(str(exc), code="four_eyes") from exc


async def register_problem(store: EventStore, cmd: c.RegisterProblem, project: d.ProjectRef | None,
                           *, actor: Actor, now: datetime, rules: d.RectificationRules,
                           correlation_id: uuid.UUID | None = None,
                           causation_id: uuid.UUID | None = None, conn: Any = None,
                           event_ids: EventIds | None = None) -> MultiOutcome:
    """登记: the item's stream and its unit's 序号 counter, in one append."""
    if project is None:
        raise NotFoundError(f"unknown project {cmd.project_id}: a problem needs a known project")
    item, counter = problem_spec(cmd.problem_id), unit_spec(project.unit)
    return await execute_streams(
        store, [item, counter], actor=actor, now=now, correlation_id=correlation_id,
        causation_id=causation_id, conn=conn, event_ids=event_ids,
        decide=lambda st: d.decide_register_problem(
            st[item.stream_id], st[counter.stream_id], cmd, project=project, actor=actor, now=now,
            rules=rules))


ProblemDecision = Callable[[d.ProblemState], Sequence[Event]]


async def change_problem(store: EventStore, problem_id: uuid.UUID, decide: ProblemDecision, *,
                         actor: Actor, now: datetime, correlation_id: uuid.UUID | None = None,
                         ) -> MultiOutcome:
    """A decision about one item that writes only its own stream."""
    item = problem_spec(problem_id)
    return await execute_streams(
        store, [item], actor=actor, now=now, correlation_id=correlation_id,
        decide=lambda st: _four_eyes_is_a_conflict(lambda: decide(st[item.stream_id])))


async def reopen_problem(store: EventStore, cmd: c.ReopenProblem, *, actor: Actor, now: datetime,
                         rules: d.RectificationRules, correlation_id: uuid.UUID | None = None,
                         ) -> MultiOutcome:
    """反弹: the original's stream, the unit's counter and the new item's stream, in one append.
    The unit is the original's, so it is read first (it never changes)."""
    original = await load_problem(store, cmd.problem_id)
    if not original.is_registered:
        raise NotFoundError(f"problem {cmd.problem_id} is not registered")
    old, counter, new = (problem_spec(cmd.problem_id), unit_spec(original.unit),
                         problem_spec(cmd.new_problem_id))
    return await execute_streams(
        store, [old, counter, new], actor=actor, now=now, correlation_id=correlation_id,
        decide=lambda st: d.decide_reopen_problem(st[old.stream_id], st[counter.stream_id], cmd,
                                                  actor=actor, now=now, rules=rules))


async def evidence_index(pool: asyncpg.Pool, hashes: Sequence[str]) -> dict[str, set[uuid.UUID]]:
    """attachment hash → items it was filed for (the read model; a flag is a warning, so a
    millisecond of lag is acceptable here)."""
    rows = await pool.fetch(
        "SELECT content_hash, problem_id FROM rectification.evidence WHERE content_hash = ANY($1)",
        list(hashes))
    index: dict[str, set[uuid.UUID]] = {}
    for row in rows:
        index.setdefault(row["content_hash"], set()).add(row["problem_id"])
    return index


# ------------------------------------------------------------------------------------------
# Reports


async def change_report(store: EventStore, report_id: str,
                        decide: Callable[[d.ReportState], Sequence[Event]], *, actor: Actor,
                        now: datetime, correlation_id: uuid.UUID | None = None) -> MultiOutcome:
    report = report_spec(report_id)
    return await execute_streams(
        store, [report], actor=actor, now=now, correlation_id=correlation_id,
        decide=lambda st: _four_eyes_is_a_conflict(lambda: decide(st[report.stream_id])))


async def submit_monthly_list(store: EventStore, cmd: c.SubmitMonthlyList, *, actor: Actor,
                              now: datetime, rules: d.RectificationRules,
                              correlation_id: uuid.UUID | None = None) -> MultiOutcome:
    """The snapshot is taken from the store, not the read model: it is a filed document."""
    rows = d.problem_list_rows(await load_unit_items(store, cmd.unit), unit=cmd.unit)
    report_id = d.monthly_list_report_id(cmd.unit, cmd.month)
    return await change_report(
        store, report_id, lambda report: d.decide_submit_monthly_list(
            report, cmd, rows=rows, actor=actor, now=now, rules=rules),
        actor=actor, now=now, correlation_id=correlation_id)


# ------------------------------------------------------------------------------------------
# Deductions


async def deduct_points(store: EventStore, cmd: c.DeductPoints, *, actor: Actor, now: datetime,
                        correlation_id: uuid.UUID | None = None) -> MultiOutcome:
    score = score_spec(cmd.unit)
    return await execute_streams(
        store, [score], actor=actor, now=now, correlation_id=correlation_id,
        event_ids=lambda _i, event: s.deduction_event_id(event),
        decide=lambda st: s.decide_discretionary_deduction(st[score.stream_id], cmd, actor=actor,
                                                           now=now))


async def check_deductions(store: EventStore, pool: asyncpg.Pool, *, units: Sequence[str],
                           rules: d.RectificationRules,
                           deduction_rules: Sequence[s.DeductionRule], now: datetime,
                           correlation_id: uuid.UUID | None = None) -> list[e.PointsDeducted]:
    """Apply the campaign's deduction rules to what has happened by `now`, once per occurrence.

    Items and reports are folded from the store (a deduction is irrevocable, so it is never
    judged from a read model that may lag). Each deduction's event id derives from (unit, rule,
    trigger ref) and the score stream is appended at the version read, so two checks running at
    once (two replicas, the timer and the on-demand route) deduct each occurrence once.
    """
    decided: list[e.PointsDeducted] = []
    for unit in units:
        items = await load_unit_items(store, unit)
        reports = await load_unit_reports(store, pool, unit)
        occurrences = s.triggers_due(unit, items=items, reports=reports, now=now,
                                     deduction_rules=deduction_rules, rules=rules)
        if not occurrences:
            continue
        score = score_spec(unit)
        outcome = await execute_streams(
            store, [score], actor=SYSTEM_ACTOR, now=now, correlation_id=correlation_id,
            event_ids=lambda _i, event: s.deduction_event_id(event),
            decide=lambda st: s.decide_deductions(st[score.stream_id], occurrences,
                                                  deduction_rules))
        decided += outcome.events  # type: ignore[arg-type]
    if decided:
        log.info("points_deducted", count=len(decided),
                 units=sorted({event.unit for event in decided}))
    return decided
