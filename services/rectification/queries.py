"""The rectification service's read side: the SQL behind its query routes and what the command
table's `prepare` reads besides streams, over its own read models (sql/0201_read_models.sql,
written by projections.py) and, where a decision must not trust a read model that may lag, the
streams themselves.

Every function takes the unit scope already decided by the caller (a district role's own unit);
none decides access itself. Rows come back as the domain's states (`problem_state`, ...), so a
view computed from the read model and one computed from the stream are the same code.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg

from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import scoring as s
from services.rectification.events import REGISTRY, DeadlineKind, ProblemListRow, ProblemSource, ReportKind
from services.registry.events import LiaisonRole
from shared.store import EventStore

# A pool for a route's query, the command's connection for a `prepare` (read in its transaction).
Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


# ------------------------------------------------------------------------------------------
# Rows as the domain's states


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
        withdrawn_by=row["withdrawn_by"], withdrawn_at=row["withdrawn_at"],
        close_out_requester_role=row["close_out_requester_role"])


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


def points_deducted(row: Mapping[str, Any]) -> e.PointsDeducted:
    """A deductions row back as the event (to fold a ScoreState for the board)."""
    points: Decimal = row["points"]
    return e.PointsDeducted(unit=row["unit"], points=format(points.normalize(), "f"),
                            rule_id=row["rule_id"], trigger_ref=row["trigger_ref"],
                            reason=row["reason"], discretionary=row["discretionary"],
                            decided_by=row["decided_by"], trigger=row["trigger"],
                            deadline=row["deadline"], problem_id=row["problem_id"])


def points_refunded(row: Mapping[str, Any]) -> e.PointsRefunded:
    points: Decimal = row["points"]
    return e.PointsRefunded(unit=row["unit"], points=format(points.normalize(), "f"),
                            rule_id=row["rule_id"], trigger_ref=row["trigger_ref"],
                            deduction_event_id=row["deduction_event_id"], reason=row["reason"],
                            decided_by=row["decided_by"])


# ------------------------------------------------------------------------------------------
# Problem items


async def items(db: Db, units: Sequence[str]) -> list[d.ProblemState]:
    rows = await db.fetch(
        "SELECT * FROM rectification.problems WHERE unit = ANY($1) ORDER BY unit, seq_no",
        list(units))
    return [problem_state(row) for row in rows]


async def item(db: Db, problem_id: uuid.UUID) -> d.ProblemState | None:
    row = await db.fetchrow("SELECT * FROM rectification.problems WHERE problem_id = $1",
                            problem_id)
    return None if row is None else problem_state(row)


async def item_history(db: Db, problem_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every event of the item, who did it and when (the actor from the event's metadata)."""
    rows = await db.fetch(
        "SELECT event_id, stream_version, event_type, occurred_at, actor_id, actor_name, "
        "actor_role, payload FROM rectification.problem_history WHERE problem_id = $1 "
        "ORDER BY stream_version", problem_id)
    return [dict(row) for row in rows]


async def evidence_filed(db: Db, content_hash: str, units: Sequence[str]) -> list[dict[str, Any]]:
    """The items an attachment was filed for, in the given units."""
    rows = await db.fetch(
        "SELECT problem_id, unit, filed_at FROM rectification.evidence "
        "WHERE content_hash = $1 AND unit = ANY($2) ORDER BY filed_at", content_hash, list(units))
    return [dict(row) for row in rows]


async def evidence_index(db: Db, hashes: Sequence[str]) -> dict[str, set[uuid.UUID]]:
    """attachment hash → items it was filed for (the read model: a reuse flag is a warning, so a
    moment of lag is acceptable here)."""
    rows = await db.fetch(
        "SELECT content_hash, problem_id FROM rectification.evidence WHERE content_hash = ANY($1)",
        list(hashes))
    index: dict[str, set[uuid.UUID]] = {}
    for row in rows:
        index.setdefault(row["content_hash"], set()).add(row["problem_id"])
    return index


async def ledger_item_ids(db: Db, project_id: str) -> list[uuid.UUID]:
    """The ids of every ledger item of a project: from the on-registry reaction's own links
    (written in its transactions, so never behind) and from the read model (items registered
    through the API). The items themselves are then folded from the store."""
    rows = await db.fetch(
        """SELECT problem_id FROM rectification.ledger_links
            WHERE project_id = $1 AND problem_id IS NOT NULL
           UNION
           SELECT problem_id FROM rectification.problems
            WHERE project_id = $1 AND source = 'ledger'""", project_id)
    return [row["problem_id"] for row in rows]


# ------------------------------------------------------------------------------------------
# Projects (this service's view of the registry's)


async def project_ref(db: Db, project_id: str) -> d.ProjectRef | None:
    row = await db.fetchrow(
        "SELECT project_id, unit, township, name, project_year FROM rectification.projects "
        "WHERE project_id = $1", project_id)
    if row is None:
        return None
    return d.ProjectRef(project_id=row["project_id"], unit=row["unit"], township=row["township"],
                        name=row["name"], year=row["project_year"] or 0)


async def projects(db: Db, units: Sequence[str]) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT project_id, project_type, name, unit, township, project_year, "
        "operating_status, on_ledger, ledger_entry_id, ledger_reason, ledger_reason_details, "
        "listed_on FROM rectification.projects WHERE unit = ANY($1) ORDER BY unit, project_id",
        list(units))
    return [dict(row) for row in rows]


# ------------------------------------------------------------------------------------------
# Reports


async def reports(db: Db, units: Sequence[str]) -> list[d.ReportState]:
    rows = await db.fetch(
        "SELECT * FROM rectification.reports WHERE unit = ANY($1) ORDER BY unit, report_id",
        list(units))
    return [report_state(row) for row in rows]


async def report(db: Db, report_id: str) -> d.ReportState | None:
    row = await db.fetchrow("SELECT * FROM rectification.reports WHERE report_id = $1", report_id)
    return None if row is None else report_state(row)


async def report_from_store(store: EventStore, report_id: str) -> d.ReportState:
    """A report folded from its own stream: a filed document is never read from a copy that
    could drift. NotFoundError for an id that is no report id."""
    spec = d.report_spec(report_id)
    state = spec.initial
    for recorded in await store.read_stream(spec.stream_id):
        state = spec.evolve(state, REGISTRY.load_recorded(recorded))
    return state


async def unit_report_ids(db: Db, unit: str) -> list[str]:
    """The ids of every report of a unit that has a stream. The store has no "streams by prefix"
    read, so they come from its stream catalogue (`es.streams`, readable by every service role);
    typical-case ids are the submitter's, so they can't be derived."""
    prefix = d.report_stream_id(f"{unit}-")
    rows = await db.fetch(
        "SELECT stream_id FROM es.streams WHERE left(stream_id, length($1)) = $1 ORDER BY 1", prefix)
    return [row["stream_id"][len(d.report_stream_id("")):] for row in rows]


# ------------------------------------------------------------------------------------------
# Scores


async def scores(db: Db, units: Sequence[str]) -> dict[str, s.ScoreState]:
    """Each unit's score folded from its deductions and refunds (a refund after its deduction)."""
    deducted = await db.fetch(
        "SELECT * FROM rectification.deductions WHERE unit = ANY($1) ORDER BY occurred_at, event_id",
        list(units))
    refunded = await db.fetch(
        "SELECT * FROM rectification.refunds WHERE unit = ANY($1) ORDER BY occurred_at, event_id",
        list(units))
    events: dict[str, list[e.Event]] = {unit: [] for unit in units}
    for row in deducted:
        events[row["unit"]].append(points_deducted(row))
    for row in refunded:
        events[row["unit"]].append(points_refunded(row))
    return {unit: s.fold_score(unit, events[unit]) for unit in units}


async def deduction_times(db: Db, units: Sequence[str]) -> dict[uuid.UUID, Any]:
    """When each deduction and refund was recorded, by event id (the board shows it)."""
    rows = await db.fetch(
        """SELECT event_id, occurred_at FROM rectification.deductions WHERE unit = ANY($1)
           UNION ALL
           SELECT event_id, occurred_at FROM rectification.refunds WHERE unit = ANY($1)""",
        list(units))
    return {row["event_id"]: row["occurred_at"] for row in rows}


# ------------------------------------------------------------------------------------------
# Liaisons (附件1, from the registry's events)


async def liaisons_complete_at(db: Db, units: Sequence[str]) -> dict[str, Any]:
    """When each unit's 附件1 was complete: both its 责任领导 and its 联络员 registered (the later of
    the two first registrations). Units without both are absent."""
    rows = await db.fetch(
        """SELECT unit, max(first_at) AS complete_at, count(*) AS roles
             FROM (SELECT unit, role, min(registered_at) AS first_at FROM rectification.liaisons
                    WHERE unit = ANY($1) GROUP BY unit, role) firsts
            GROUP BY unit""", list(units))
    return {row["unit"]: row["complete_at"] for row in rows if row["roles"] >= len(LiaisonRole)}


async def responsible_leaders(db: Db, units: Sequence[str]) -> dict[str, str]:
    """Each unit's current 责任领导 (the latest registration), by name."""
    rows = await db.fetch(
        """SELECT DISTINCT ON (unit) unit, name FROM rectification.liaisons
            WHERE unit = ANY($1) AND role = $2 ORDER BY unit, version DESC""",
        list(units), str(LiaisonRole.LEADER))
    return {row["unit"]: row["name"] for row in rows}
