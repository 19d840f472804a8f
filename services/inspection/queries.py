"""The inspection service's read side: the SQL behind its query routes and behind what a command
prepares (the registry view a frame is frozen from), over its own read models
(sql/0301_read_models.sql, written by projections.py), and one draw folded from its stream.

Functions take the unit scope already decided by the route (a district role's own unit whatever
it asked); none decides access itself. `db` is the pool, or a command's connection when the read
belongs to the command's transaction.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg

from services.inspection import domain as d
from services.inspection.events import CONTRACT
from shared.store import EventStore

EVENTS = CONTRACT.registry()

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


async def _fetch(db: Db, query: str, *args: Any) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(query, *args)
    return rows


# ----- one draw, from its stream (what the 抽查名单 export and the verifier see) ------------------


async def draw_state(store: EventStore, draw_id: str) -> d.DrawState:
    """The draw folded from its stream; DrawNotFoundError when no frame was frozen under the id."""
    spec = d.draw_spec(draw_id)
    state = spec.initial
    for recorded in await store.read_stream(spec.stream_id):
        state = spec.evolve(state, EVENTS.load_recorded(recorded))
    if state.stage is d.Stage.NEW:
        raise d.DrawNotFoundError(f"draw {draw_id!r} does not exist",
                                  zh=f"抽签 {draw_id} 不存在。")
    return state


# ----- draws, from the read models ----------------------------------------------------------------

_DRAW_COLUMNS = """draw_id, title, stage, algorithm_version, units, frames_digest, entropy_statement,
                   entropy_not_before, entropy, frozen_at, committed_at, revealed_at, drawn_at"""


async def draws(db: Db) -> list[asyncpg.Record]:
    return await _fetch(
        db, f"SELECT {_DRAW_COLUMNS} FROM inspection.draws ORDER BY frozen_at DESC, draw_id")


async def draw(db: Db, draw_id: str) -> asyncpg.Record:
    row = await db.fetchrow(f"SELECT {_DRAW_COLUMNS} FROM inspection.draws WHERE draw_id = $1",
                            draw_id)
    if row is None:
        raise d.DrawNotFoundError(f"draw {draw_id!r} does not exist",
                                  zh=f"抽签 {draw_id} 不存在。")
    return row


async def strata(db: Db, draw_id: str, *, unit: str | None) -> list[asyncpg.Record]:
    return await _fetch(
        db, """SELECT stratum, unit, project_type, rule, frame_digest, frame_size, excluded,
                  sample_size, replacements, no_eligible_project, insufficient_sample, township
             FROM inspection.draw_strata
            WHERE draw_id = $1 AND ($2::text IS NULL OR unit = $2) ORDER BY stratum""",
        draw_id, unit)


async def draw_units(db: Db, draw_id: str, *, unit: str | None) -> list[str]:
    """The units of a draw a query covers: all of them, or the one in scope if the draw has it."""
    units = await db.fetchval("SELECT units FROM inspection.draws WHERE draw_id = $1", draw_id)
    if units is None:
        raise d.DrawNotFoundError(f"draw {draw_id!r} does not exist",
                                  zh=f"抽签 {draw_id} 不存在。")
    if unit is None:
        return list(units)
    if unit not in units:
        raise d.UnitNotInDrawError(f"unit {unit!r} is not part of draw {draw_id!r}",
                                   zh="该单位不在本次抽查范围内。")
    return [unit]


async def picks(db: Db, draw_id: str, units: Sequence[str]) -> list[asyncpg.Record]:
    return await _fetch(
        db, """SELECT unit, stratum, project_type, selection, sequence_no, target_kind, target_id,
                  in_sample, replaces, replaced_by, reason_code, reason, project_id, name,
                  township, project_year
             FROM inspection.draw_picks
            WHERE draw_id = $1 AND unit = ANY($2::text[])
            ORDER BY unit, stratum NULLS LAST, sequence_no NULLS LAST, target_id""",
        draw_id, list(units))


async def progress(db: Db, draw_id: str, units: Sequence[str]) -> list[asyncpg.Record]:
    return await _fetch(
        db, """SELECT unit, sampled, scheduled, inspected, passed, problems_found, unable_to_enter,
                  findings, no_eligible_strata, insufficient_sample
             FROM inspection.visit_progress
            WHERE draw_id = $1 AND unit = ANY($2::text[]) ORDER BY unit""", draw_id, list(units))


async def visits(db: Db, draw_id: str, units: Sequence[str]) -> list[asyncpg.Record]:
    return await _fetch(
        db, """SELECT visit_id, target_kind, target_id, unit, project_type, scheduled_for,
                  inspector_ids, outcome, unable_reason_code, visited_on, checklist,
                  photo_hashes, findings
             FROM inspection.visits WHERE draw_id = $1 AND unit = ANY($2::text[])
            ORDER BY unit, scheduled_for, visit_id""", draw_id, list(units))


async def findings(db: Db, draw_id: str, units: Sequence[str]) -> list[asyncpg.Record]:
    return await _fetch(
        db, """SELECT finding_id, visit_id, project_id, household_code, unit, project_type,
                  project_name, township, project_year, text, deadline, found_on
             FROM inspection.findings WHERE draw_id = $1 AND unit = ANY($2::text[])
            ORDER BY unit, found_on, finding_id""", draw_id, list(units))


# ----- the view of the registry -------------------------------------------------------------------


async def registry_projects(db: Db, *, unit: str | None) -> list[asyncpg.Record]:
    return await _fetch(
        db, """SELECT project_id, kind, project_type, unit, township, name, project_year,
                  provincial_key, registered, retired, retired_reason_code, retired_reason,
                  retired_on
             FROM inspection.projects WHERE $1::text IS NULL OR unit = $1
            ORDER BY unit, project_type, project_id""", unit)


async def registry_townships(db: Db, *, unit: str | None) -> list[asyncpg.Record]:
    """Adapted households per township (codes only)."""
    return await _fetch(
        db, """SELECT unit, township, count(*)::int AS households,
                  array_agg(household_code ORDER BY household_code) AS household_codes
             FROM inspection.households WHERE $1::text IS NULL OR unit = $1
            GROUP BY unit, township ORDER BY unit, township""", unit)


def _project(row: Mapping[str, Any]) -> d.ProjectView:
    return d.ProjectView(project_id=row["project_id"], unit=row["unit"], township=row["township"],
                         project_type=row["project_type"], provincial_key=row["provincial_key"],
                         retired=row["retired"], retired_reason=row["retired_reason"],
                         name=row["name"], project_year=row["project_year"])


async def project_view(db: Db, project_id: str) -> d.ProjectView | None:
    row = await db.fetchrow("SELECT * FROM inspection.projects WHERE project_id = $1", project_id)
    return _project(row) if row is not None else None


async def registry_view(db: Db) -> tuple[list[d.ProjectView], list[d.HouseholdView]]:
    """Every project and household the service knows, as the domain's frame inputs."""
    projects = [_project(r) for r in await db.fetch(
        "SELECT * FROM inspection.projects ORDER BY project_id")]
    rows = await db.fetch(
        """SELECT household_code, programme_id, unit, township, adaptation_year
             FROM inspection.households ORDER BY household_id""")
    return projects, sampling_households(rows)


def sampling_households(rows: Sequence[Mapping[str, Any]]) -> list[d.HouseholdView]:
    """Households with the codes a frame lists them under.

    The registry makes a household code unique within its programme only (one programme per
    unit, township and year). A frame needs codes unique within a unit, so a code that two
    programmes of the same unit share is qualified with its programme's township and year
    (`H-001@凤凰街道2023`); unique codes, the usual case, stay as they were registered.
    """
    programmes_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        programmes_of[(row["unit"], row["household_code"])].add(row["programme_id"])
    views = []
    for row in rows:
        code = row["household_code"]
        if len(programmes_of[(row["unit"], code)]) > 1:
            code = f"{code}@{row['township']}{row['adaptation_year']}"
        views.append(d.HouseholdView(household_code=code, project_id=row["programme_id"],
                                     unit=row["unit"], township=row["township"]))
    return views
