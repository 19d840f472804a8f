"""The registry's read side: the SQL behind its query routes, over its own read models
(sql/0101_read_models.sql, written by projections.py) and, for one project's history, its stream.

Every function takes the unit scope already decided by the route (a district role's own unit
whatever it asked); none decides access itself.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import asyncpg

from shared.messages import Actor, RecordedEvent
from shared.store import EventStore


@dataclass(frozen=True)
class Page:
    rows: list[asyncpg.Record]
    total: int


def _where(filters: Sequence[tuple[str, Any]], alias: str = "") -> tuple[str, list[Any]]:
    """`column = $n AND …` for the filters that are set (columns are ours, never the caller's)."""
    clauses, args = ["TRUE"], []
    for column, value in filters:
        if value is not None:
            args.append(value)
            clauses.append(f"{alias}{column} = ${len(args)}")
    return " AND ".join(clauses), args


async def projects(pool: asyncpg.Pool, *, unit: str | None, project_type: str | None,
                   status: str | None, provincial_key: bool | None, limit: int,
                   offset: int) -> Page:
    where, args = _where([("unit", unit), ("project_type", project_type), ("status", status),
                          ("provincial_key", provincial_key)])
    total = await pool.fetchval(f"SELECT count(*) FROM registry.projects WHERE {where}", *args)
    rows = await pool.fetch(
        f"SELECT * FROM registry.projects WHERE {where} "
        f"ORDER BY unit, project_type, name, project_id "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}", *args, limit, offset)
    return Page(rows, total)


async def project_stream(store: EventStore, stream_id: str) -> list[RecordedEvent]:
    """One project's events, every one, in order: its history is the stream itself."""
    return await store.read_stream(stream_id)


async def ledger(pool: asyncpg.Pool, *, unit: str | None, include_cleared: bool, limit: int,
                 offset: int) -> Page:
    where, args = _where([("unit", unit)], alias="l.")
    if not include_cleared:  # open: neither cleared by an assessment nor replaced by a new entry
        where += " AND l.cleared_on IS NULL AND l.superseded_by IS NULL"
    total = await pool.fetchval(f"SELECT count(*) FROM registry.ledger l WHERE {where}", *args)
    # The problem items rectification opened for the entry (its view, subscribers.py): the 序号
    # that links a 台账 row to its 问题清单 row.
    rows = await pool.fetch(
        f"""SELECT l.*, p.status AS current_status, p.retired_on IS NOT NULL AS retired,
                   COALESCE((SELECT json_agg(json_build_object('problem_id', i.problem_id,
                                                               'seq_no', i.seq_no)
                                             ORDER BY i.seq_no)
                               FROM registry.rectification_items i
                              WHERE i.entry_id = l.entry_id), '[]'::json) AS problem_items
              FROM registry.ledger l LEFT JOIN registry.projects p USING (project_id)
             WHERE {where} ORDER BY l.unit, l.listed_on, l.project_name, l.entry_id
             LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""", *args, limit, offset)
    return Page(rows, total)


async def liaisons(pool: asyncpg.Pool, *, unit: str | None) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM registry.liaisons WHERE ($1::text IS NULL OR unit = $1) ORDER BY unit, role",
        unit)


async def record_reveal(pool: asyncpg.Pool, *, actor: Actor, what: str, unit: str | None,
                        subjects: Sequence[str], fields: Sequence[str],
                        correlation_id: uuid.UUID) -> None:
    """Who saw which subjects' fields in clear, and when; never the values (append-only table)."""
    await pool.execute(
        """INSERT INTO registry.personal_data_access (actor_id, actor_name, actor_role,
                  actor_unit, what, unit, subject_ids, fields, correlation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        actor.id, actor.name, actor.role.value, actor.unit, what, unit, list(subjects),
        list(fields), correlation_id)


async def programmes(pool: asyncpg.Pool, *, unit: str | None, limit: int, offset: int) -> Page:
    total = await pool.fetchval(
        "SELECT count(*) FROM registry.programmes WHERE ($1::text IS NULL OR unit = $1)", unit)
    rows = await pool.fetch(
        "SELECT * FROM registry.programmes WHERE ($1::text IS NULL OR unit = $1) "
        "ORDER BY unit, township, year LIMIT $2 OFFSET $3", unit, limit, offset)
    return Page(rows, total)


async def programme(pool: asyncpg.Pool, programme_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM registry.programmes WHERE programme_id = $1",
                               programme_id)


async def households(pool: asyncpg.Pool, programme_id: str, *, limit: int,
                     offset: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM registry.households WHERE programme_id = $1 "
        "ORDER BY household_code LIMIT $2 OFFSET $3", programme_id, limit, offset)


async def has_events(pool: asyncpg.Pool, categories: Sequence[str]) -> bool:
    """Whether any registry stream holds an event (the sample goes only into an empty registry)."""
    found: bool = await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM es.events WHERE category = ANY($1::text[]))",
        list(categories))
    return found
