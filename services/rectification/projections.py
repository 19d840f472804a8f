"""Read models of the rectification service (tables in sql/0201_read_models.sql): they only write
views, exactly once (inbox row + these writes + the position in one transaction).

Of its own events, on the sequenced ledger (`PROJECTIONS`). An item's or a report's row is its
stream folded by the domain's own `evolve` up to the event being projected (read from the store in
the same transaction), so the row can never disagree with the rules about what a state means; the
row keeps the stream version it reflects.

- problems: one row per item (state, deadline and what `overdue` is computed from), its history,
  and the evidence hash index (纸面销号 checks);
- unit_counters: 序号 handed out per unit;
- reports: monthly lists (with their frozen rows), self-inspection reports, typical cases;
- deductions, refunds and scores: PointsDeducted and PointsRefunded per unit.

Of the registry's events, over the bus (`REGISTRY_VIEW`, a consumer of its own queue): this
service's view of projects (unit, township, name, year, type, operating status, ledger state) and
of each unit's 附件1 (liaisons: names and positions, never phones; when registered).
What the registry's 台账 entries *cause* (an automatic item) is a reaction (subscribers.py).
"""
from __future__ import annotations

import uuid
from typing import Any

from services.rectification import domain as d
from services.rectification import events as e
from services.rectification.config import RectificationConfig
from services.rectification.events import REGISTRY
from services.registry.events import CONTRACT as REGISTRY_CONTRACT
from services.registry.events import (
    AdaptationProgrammeRegistered,
    LedgerEntryAdded,
    LedgerEntryCleared,
    LiaisonRegistered,
    ProjectAssessed,
    ProjectRegistered,
    ProjectRetired,
    ServicesChanged,
)
from shared.consuming import ConsumerSpec, HandlerContext
from shared.messages import RecordedEvent
from shared.pipeline import StreamSpec

Context = HandlerContext[RectificationConfig]

# ------------------------------------------------------------------------------------------
# Problem items


async def _fold_to_this_event(ctx: Context, spec: StreamSpec[Any]) -> tuple[Any, RecordedEvent]:
    """The stream folded up to (and including) the event being projected, and that event."""
    state, this = spec.initial, None
    for recorded in await ctx.store.read_stream(spec.stream_id, conn=ctx.conn):
        if recorded.stream_version > ctx.delivery.stream_version:
            break
        state = spec.evolve(state, REGISTRY.load_recorded(recorded))
        this = recorded
    if this is None or this.event_id != ctx.delivery.event_id:
        raise RuntimeError(f"{spec.stream_id} has no event {ctx.delivery.event_id} at version "
                           f"{ctx.delivery.stream_version}")
    return state, this


PROBLEM_COLUMNS = (
    "problem_id", "unit", "seq_no", "status", "project_id", "project_name", "township",
    "project_year", "description", "deadline", "deadline_kind", "responsible_person", "source",
    "source_ref", "ledger_reason", "reopened_from", "reopened_as", "registered_by",
    "registered_at", "plan", "close_out_requested_by", "evidence_text", "evidence_hashes",
    "flagged_hashes", "verified_by", "verifier_role", "closed_at", "times_returned",
    "pending_new_deadline", "pending_reason", "pending_requested_by", "extensions_granted",
    "withdrawn_by", "withdrawn_at", "version", "close_out_requester_role",
)


def problem_row(state: d.ProblemState, version: int) -> tuple[Any, ...]:
    pending = state.pending_extension
    values = {
        "problem_id": state.problem_id, "unit": state.unit, "seq_no": state.seq_no,
        "status": str(state.status), "project_id": state.project_id,
        "project_name": state.project_name, "township": state.township,
        "project_year": state.project_year, "description": state.description,
        "deadline": state.deadline, "deadline_kind": str(state.deadline_kind),
        "responsible_person": state.responsible_person, "source": str(state.source),
        "source_ref": state.source_ref, "ledger_reason": state.ledger_reason,
        "reopened_from": state.reopened_from, "reopened_as": state.reopened_as,
        "registered_by": state.registered_by, "registered_at": state.registered_at,
        "plan": state.plan, "close_out_requested_by": state.close_out_requested_by,
        "evidence_text": state.evidence_text, "evidence_hashes": list(state.evidence_hashes),
        "flagged_hashes": list(state.flagged_hashes), "verified_by": state.verified_by,
        "verifier_role": state.verifier_role, "closed_at": state.closed_at,
        "times_returned": state.times_returned,
        "pending_new_deadline": pending.new_deadline if pending else None,
        "pending_reason": pending.reason if pending else None,
        "pending_requested_by": pending.requested_by if pending else None,
        "extensions_granted": state.extensions_granted, "withdrawn_by": state.withdrawn_by,
        "withdrawn_at": state.withdrawn_at, "version": version,
        "close_out_requester_role": state.close_out_requester_role,
    }
    return tuple(values[column] for column in PROBLEM_COLUMNS)


_UPSERT_PROBLEM = (
    f"INSERT INTO rectification.problems ({', '.join(PROBLEM_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(PROBLEM_COLUMNS) + 1))}) "
    f"ON CONFLICT (problem_id) DO UPDATE SET "
    + ", ".join(f"{col} = EXCLUDED.{col}" for col in PROBLEM_COLUMNS if col != "problem_id")
    + " WHERE rectification.problems.version < EXCLUDED.version")


async def project_problem_event(ctx: Context, event: e.Event) -> None:
    problem_id: uuid.UUID = event.problem_id  # type: ignore[attr-defined]
    state, recorded = await _fold_to_this_event(ctx, d.problem_spec(problem_id))
    await ctx.conn.execute(_UPSERT_PROBLEM, *problem_row(state, ctx.delivery.stream_version))
    actor = recorded.actor  # who did it: the event's metadata, kept next to the payload
    await ctx.conn.execute(
        """INSERT INTO rectification.problem_history (event_id, problem_id, stream_version,
                   event_type, occurred_at, actor_id, actor_name, actor_role, payload)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING""",
        ctx.delivery.event_id, problem_id, ctx.delivery.stream_version, event.type_name,
        ctx.delivery.occurred_at, actor.id, actor.name, str(actor.role),
        event.model_dump(mode="json"))
    if isinstance(event, e.CloseOutRequested):
        await ctx.conn.executemany(
            """INSERT INTO rectification.evidence (content_hash, problem_id, unit, filed_at)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            [(h, problem_id, event.unit, event.requested_at) for h in event.attachment_hashes])


async def project_seq_no(ctx: Context, event: e.SeqNoAllocated) -> None:
    await ctx.conn.execute(
        """INSERT INTO rectification.unit_counters (unit, last_seq_no, allocated)
           VALUES ($1, $2, 1)
           ON CONFLICT (unit) DO UPDATE SET
               last_seq_no = greatest(rectification.unit_counters.last_seq_no, EXCLUDED.last_seq_no),
               allocated = rectification.unit_counters.allocated + 1""",
        event.unit, event.seq_no)


# ------------------------------------------------------------------------------------------
# Reports

REPORT_COLUMNS = (
    "report_id", "kind", "unit", "period", "status", "version", "submitted_by", "submitter",
    "submitted_at", "first_submitted_at", "due", "late", "rows", "title", "text",
    "attachment_hashes", "reviewed_by", "reviewer", "reviewed_at", "comments", "stream_version",
)


def report_row(report: d.ReportState, stream_version: int) -> tuple[Any, ...]:
    values = {
        "report_id": report.report_id, "kind": str(report.kind), "unit": report.unit,
        "period": report.period, "status": str(report.status) if report.status else None,
        "version": report.version, "submitted_by": report.submitted_by,
        "submitter": report.submitter, "submitted_at": report.submitted_at,
        "first_submitted_at": report.first_submitted_at, "due": report.due, "late": report.late,
        "rows": [row.model_dump(mode="json") for row in report.rows], "title": report.title,
        "text": report.text, "attachment_hashes": list(report.attachment_hashes),
        "reviewed_by": report.reviewed_by, "reviewer": report.reviewer,
        "reviewed_at": report.reviewed_at, "comments": list(report.comments),
        "stream_version": stream_version,
    }
    return tuple(values[column] for column in REPORT_COLUMNS)


_UPSERT_REPORT = (
    f"INSERT INTO rectification.reports ({', '.join(REPORT_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(REPORT_COLUMNS) + 1))}) "
    f"ON CONFLICT (report_id) DO UPDATE SET "
    + ", ".join(f"{col} = EXCLUDED.{col}" for col in REPORT_COLUMNS if col != "report_id")
    + " WHERE rectification.reports.stream_version < EXCLUDED.stream_version")


async def project_report_event(ctx: Context, event: e.Event) -> None:
    report_id: str = event.report_id  # type: ignore[attr-defined]
    report, _ = await _fold_to_this_event(ctx, d.report_spec(report_id))
    await ctx.conn.execute(_UPSERT_REPORT, *report_row(report, ctx.delivery.stream_version))


# ------------------------------------------------------------------------------------------
# Scores


async def project_deduction(ctx: Context, event: e.PointsDeducted) -> None:
    inserted = await ctx.conn.fetchval(
        """INSERT INTO rectification.deductions (event_id, unit, points, rule_id, trigger_ref,
                   reason, discretionary, decided_by, occurred_at, trigger, deadline, problem_id)
           VALUES ($1, $2, $3::numeric, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (event_id) DO NOTHING RETURNING true""",
        ctx.delivery.event_id, event.unit, event.points, event.rule_id, event.trigger_ref,
        event.reason, event.discretionary, event.decided_by, ctx.delivery.occurred_at,
        event.trigger, event.deadline, event.problem_id)
    if inserted:
        await ctx.conn.execute(
            """INSERT INTO rectification.scores (unit, deducted, deductions)
               VALUES ($1, $2::numeric, 1)
               ON CONFLICT (unit) DO UPDATE SET
                   deducted = rectification.scores.deducted + EXCLUDED.deducted,
                   deductions = rectification.scores.deductions + 1""",
            event.unit, event.points)


async def project_refund(ctx: Context, event: e.PointsRefunded) -> None:
    inserted = await ctx.conn.fetchval(
        """INSERT INTO rectification.refunds (event_id, unit, points, rule_id, trigger_ref,
                   deduction_event_id, reason, decided_by, occurred_at)
           VALUES ($1, $2, $3::numeric, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (event_id) DO NOTHING RETURNING true""",
        ctx.delivery.event_id, event.unit, event.points, event.rule_id, event.trigger_ref,
        event.deduction_event_id, event.reason, event.decided_by, ctx.delivery.occurred_at)
    if inserted:
        await ctx.conn.execute(
            """INSERT INTO rectification.scores (unit, deducted, deductions)
               VALUES ($1, -$2::numeric, 0)
               ON CONFLICT (unit) DO UPDATE SET
                   deducted = rectification.scores.deducted - $2::numeric""",
            event.unit, event.points)


# ------------------------------------------------------------------------------------------
# The view of the registry's projects

_UPSERT_IDENTITY = """
    INSERT INTO rectification.projects (project_id, project_type, name, unit, township,
                                        project_year, registered)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (project_id) DO UPDATE SET
        project_type = coalesce(EXCLUDED.project_type, rectification.projects.project_type),
        name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE rectification.projects.name END,
        unit = EXCLUDED.unit,
        township = EXCLUDED.township,
        project_year = coalesce(EXCLUDED.project_year, rectification.projects.project_year),
        registered = rectification.projects.registered OR EXCLUDED.registered"""

_SET_STATUS = """
    UPDATE rectification.projects SET operating_status = $2, status_version = $3
     WHERE project_id = $1 AND status_version < $3"""


async def _identity(ctx: Context, project_id: str, *, project_type: str | None, name: str,
                    unit: str, township: str, year: int | None, registered: bool = False) -> None:
    await ctx.conn.execute(_UPSERT_IDENTITY, project_id, project_type, name, unit, township, year,
                           registered)


async def view_project_registered(ctx: Context, event: ProjectRegistered) -> None:
    await _identity(ctx, event.project_id, project_type=event.project_type, name=event.name,
                    unit=event.unit, township=event.township, year=event.project_year,
                    registered=True)
    await ctx.conn.execute(_SET_STATUS, event.project_id, event.status.value,
                           ctx.delivery.stream_version)


async def view_programme_registered(ctx: Context, event: AdaptationProgrammeRegistered) -> None:
    await _identity(ctx, event.programme_id, project_type=event.project_type, name=event.name,
                    unit=event.unit, township=event.township, year=event.year, registered=True)


async def view_status_changed(ctx: Context,
                              event: ServicesChanged | ProjectAssessed | ProjectRetired) -> None:
    name = event.name if isinstance(event, ProjectRetired) else ""
    await _identity(ctx, event.project_id, project_type=event.project_type, name=name,
                    unit=event.unit, township=event.township, year=None)
    status = "retired" if isinstance(event, ProjectRetired) else event.status.value
    await ctx.conn.execute(_SET_STATUS, event.project_id, status, ctx.delivery.stream_version)


async def view_ledger_entry_added(ctx: Context, event: LedgerEntryAdded) -> None:
    await _identity(ctx, event.project_id, project_type=event.project_type,
                    name=event.project_name, unit=event.unit, township=event.township,
                    year=event.project_year)
    await ctx.conn.execute(
        """UPDATE rectification.projects
              SET on_ledger = true, ledger_entry_id = $2, ledger_reason = $3,
                  ledger_reason_details = $4, listed_on = $5, ledger_version = $6
            WHERE project_id = $1 AND ledger_version < $6""",
        event.project_id, event.entry_id, event.reason, list(event.reason_details),
        event.listed_on, ctx.delivery.stream_version)


async def view_ledger_entry_cleared(ctx: Context, event: LedgerEntryCleared) -> None:
    """Off the registry's ledger. The item stays as it is: only a verified close-out closes it."""
    await _identity(ctx, event.project_id, project_type=event.project_type, name="",
                    unit=event.unit, township=event.township, year=None)
    await ctx.conn.execute(
        """UPDATE rectification.projects SET on_ledger = false, ledger_version = $3
            WHERE project_id = $1 AND ledger_entry_id = $2 AND ledger_version < $3""",
        event.project_id, event.entry_id, ctx.delivery.stream_version)


async def view_liaison_registered(ctx: Context, event: LiaisonRegistered) -> None:
    """附件1 as this service needs it: who (name, position; never a phone) and when."""
    await ctx.conn.execute(
        """INSERT INTO rectification.liaisons (unit, role, version, name, position,
                   submitted_late, registered_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
        event.unit, str(event.role), event.version, event.name, event.position,
        event.submitted_late, ctx.delivery.occurred_at)


PROJECTIONS = [
    ConsumerSpec(name="rectification.projection-problems", source=e.CONTRACT,
                 reactions={**{cls: project_problem_event for cls in e.PROBLEM_EVENTS},
                            e.SeqNoAllocated: project_seq_no}),
    ConsumerSpec(name="rectification.projection-reports", source=e.CONTRACT,
                 reactions={cls: project_report_event for cls in e.REPORT_EVENTS}),
    ConsumerSpec(name="rectification.projection-scores", source=e.CONTRACT,
                 reactions={e.PointsDeducted: project_deduction,
                            e.PointsRefunded: project_refund}),
]

REGISTRY_VIEW = ConsumerSpec(name="rectification.registry-view", source=REGISTRY_CONTRACT, reactions={
    ProjectRegistered: view_project_registered,
    AdaptationProgrammeRegistered: view_programme_registered,
    ServicesChanged: view_status_changed,
    ProjectAssessed: view_status_changed,
    ProjectRetired: view_status_changed,
    LedgerEntryAdded: view_ledger_entry_added,
    LedgerEntryCleared: view_ledger_entry_cleared,
    LiaisonRegistered: view_liaison_registered,
})
