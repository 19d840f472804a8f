"""Read models of the rectification service's own events (tables in sql/0200_read_models.sql).

They run on the sequenced ledger, exactly once (inbox row + these writes + the position in one
transaction). An item's or a report's row is its stream folded by the domain's own `evolve` up to
the event being projected (read from the store in the same transaction), so the row can never
disagree with the rules about what a state means; the row keeps the stream version it reflects.

- problems: one row per item (state, deadline and what `overdue` is computed from), its history,
  and the evidence hash index (纸面销号 checks);
- unit_counters: 序号 handed out per unit;
- reports: monthly lists (with their frozen rows), self-inspection reports, typical cases;
- deductions and scores: PointsDeducted per unit.
"""
from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any, Mapping

from shared.consuming import ConsumerSpec, HandlerContext
from shared.messages import RecordedEvent

from . import domain as d
from . import events as e
from .events import REGISTRY, DeadlineKind, ProblemListRow, ProblemSource, ReportKind
from .handlers import problem_spec, report_spec

# ------------------------------------------------------------------------------------------
# Problem items


async def _fold_to_this_event(ctx: HandlerContext, spec: Any) -> tuple[Any, RecordedEvent]:
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
    "withdrawn_by", "withdrawn_at", "version",
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
    }
    return tuple(values[column] for column in PROBLEM_COLUMNS)


def problem_state(row: Mapping[str, Any]) -> d.ProblemState:
    """A read-model row back as the domain's state (for progress, lists and the board)."""
    pending = None
    if row["pending_new_deadline"] is not None:
        pending = d.PendingExtension(new_deadline=row["pending_new_deadline"],
                                     reason=row["pending_reason"],
                                     requested_by=row["pending_requested_by"])
    return d.ProblemState(
        problem_id=row["problem_id"], status=d.ProblemStatus(row["status"]), unit=row["unit"],
        seq_no=row["seq_no"], project_id=row["project_id"], project_name=row["project_name"],
        township=row["township"], project_year=row["project_year"],
        description=row["description"], deadline=row["deadline"],
        deadline_kind=DeadlineKind(row["deadline_kind"]),
        responsible_person=row["responsible_person"], source=ProblemSource(row["source"]),
        source_ref=row["source_ref"], ledger_reason=row["ledger_reason"],
        reopened_from=row["reopened_from"], registered_by=row["registered_by"],
        registered_at=row["registered_at"], plan=row["plan"],
        close_out_requested_by=row["close_out_requested_by"],
        evidence_text=row["evidence_text"], evidence_hashes=tuple(row["evidence_hashes"]),
        flagged_hashes=tuple(row["flagged_hashes"]), verified_by=row["verified_by"],
        verifier_role=row["verifier_role"], closed_at=row["closed_at"],
        times_returned=row["times_returned"], pending_extension=pending,
        extensions_granted=row["extensions_granted"], reopened_as=row["reopened_as"],
        withdrawn_by=row["withdrawn_by"], withdrawn_at=row["withdrawn_at"])


_UPSERT_PROBLEM = (
    f"INSERT INTO rectification.problems ({', '.join(PROBLEM_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(PROBLEM_COLUMNS) + 1))}) "
    f"ON CONFLICT (problem_id) DO UPDATE SET "
    + ", ".join(f"{col} = EXCLUDED.{col}" for col in PROBLEM_COLUMNS if col != "problem_id")
    + " WHERE rectification.problems.version < EXCLUDED.version")


async def project_problem_event(ctx: HandlerContext, event: e.Event) -> None:
    problem_id: uuid.UUID = event.problem_id  # type: ignore[attr-defined]
    state, recorded = await _fold_to_this_event(ctx, problem_spec(problem_id))
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


async def project_seq_no(ctx: HandlerContext, event: e.SeqNoAllocated) -> None:
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


def report_state(row: Mapping[str, Any]) -> d.ReportState:
    rows = row["rows"]
    if isinstance(rows, str):
        rows = json.loads(rows)
    return d.ReportState(
        report_id=row["report_id"], kind=ReportKind(row["kind"]), unit=row["unit"],
        period=row["period"], status=d.ReportStatus(row["status"]) if row["status"] else None,
        version=row["version"], submitted_by=row["submitted_by"], submitter=row["submitter"],
        submitted_at=row["submitted_at"], first_submitted_at=row["first_submitted_at"],
        due=row["due"], late=row["late"],
        rows=tuple(ProblemListRow.model_validate(r) for r in rows), title=row["title"],
        text=row["text"], attachment_hashes=tuple(row["attachment_hashes"]),
        reviewed_by=row["reviewed_by"], reviewer=row["reviewer"], reviewed_at=row["reviewed_at"],
        comments=tuple(row["comments"]))


_UPSERT_REPORT = (
    f"INSERT INTO rectification.reports ({', '.join(REPORT_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(REPORT_COLUMNS) + 1))}) "
    f"ON CONFLICT (report_id) DO UPDATE SET "
    + ", ".join(f"{col} = EXCLUDED.{col}" for col in REPORT_COLUMNS if col != "report_id")
    + " WHERE rectification.reports.stream_version < EXCLUDED.stream_version")


async def project_report_event(ctx: HandlerContext, event: e.Event) -> None:
    report_id: str = event.report_id  # type: ignore[attr-defined]
    report, _ = await _fold_to_this_event(ctx, report_spec(report_id))
    await ctx.conn.execute(_UPSERT_REPORT, *report_row(report, ctx.delivery.stream_version))


# ------------------------------------------------------------------------------------------
# Scores


async def project_deduction(ctx: HandlerContext, event: e.PointsDeducted) -> None:
    inserted = await ctx.conn.fetchval(
        """INSERT INTO rectification.deductions (event_id, unit, points, rule_id, trigger_ref,
                   reason, discretionary, decided_by, occurred_at)
           VALUES ($1, $2, $3::numeric, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (event_id) DO NOTHING RETURNING true""",
        ctx.delivery.event_id, event.unit, event.points, event.rule_id, event.trigger_ref,
        event.reason, event.discretionary, event.decided_by, ctx.delivery.occurred_at)
    if inserted:
        await ctx.conn.execute(
            """INSERT INTO rectification.scores (unit, deducted, deductions)
               VALUES ($1, $2::numeric, 1)
               ON CONFLICT (unit) DO UPDATE SET
                   deducted = rectification.scores.deducted + EXCLUDED.deducted,
                   deductions = rectification.scores.deductions + 1""",
            event.unit, event.points)


def points_deducted(row: Mapping[str, Any]) -> e.PointsDeducted:
    """A deductions row back as the event (to fold a ScoreState for the board)."""
    points: Decimal = row["points"]
    return e.PointsDeducted(unit=row["unit"], points=format(points.normalize(), "f"),
                            rule_id=row["rule_id"], trigger_ref=row["trigger_ref"],
                            reason=row["reason"], discretionary=row["discretionary"],
                            decided_by=row["decided_by"])


PROJECTIONS = [
    ConsumerSpec(name="rectification.projection-problems", source=e.CONTRACT,
                 reactions={**{cls: project_problem_event for cls in e.PROBLEM_EVENTS},
                            e.SeqNoAllocated: project_seq_no}),
    ConsumerSpec(name="rectification.projection-reports", source=e.CONTRACT,
                 reactions={cls: project_report_event for cls in e.REPORT_EVENTS}),
    ConsumerSpec(name="rectification.projection-scores", source=e.CONTRACT,
                 reactions={e.PointsDeducted: project_deduction}),
]
