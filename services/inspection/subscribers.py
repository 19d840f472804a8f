"""The inspection service's view of the registry, built from registry events only.

What a frame needs: each project's unit, township, type, provincial key flag, name, year and
whether (and why) it was retired; each adapted household's code, programme, unit and township.
No names, addresses or phones of older people: household records arrive with those sealed, and
the sealed fields are never stored here.

Deliveries are at least once and a redelivered message can arrive after a later one, so every
reaction is an upsert that a late or repeated event cannot undo: retirement is never reverted, the
provincial flag is taken from the newest assessment seen, and a row first created by a later
event gets the registration's details when the registration arrives.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg

from services.inspection.domain import HouseholdView, ProjectView
from services.registry.events import CONTRACT as REGISTRY_CONTRACT
from services.registry.events import (
    AdaptationProgrammeRegistered, HouseholdsRegistered, ProjectAssessed, ProjectRegistered,
    ProjectRetired,
)
from shared.consuming import ConsumerSpec, HandlerContext

CONSUMER_NAME = "inspection.on-registry"
_FALLBACK_PROGRAMME_TYPE = "home_adaptation"


async def on_project_registered(ctx: HandlerContext, event: ProjectRegistered) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.projects AS p (project_id, kind, project_type, unit, township,
                   name, project_year, provincial_key, provincial_key_as_of, registered)
           VALUES ($1, 'facility', $2, $3, $4, $5, $6, $7, 0, true)
           ON CONFLICT (project_id) DO UPDATE SET
               project_type = EXCLUDED.project_type, unit = EXCLUDED.unit,
               township = EXCLUDED.township, name = EXCLUDED.name,
               project_year = EXCLUDED.project_year, registered = true,
               provincial_key = CASE WHEN p.provincial_key_as_of < 0
                                     THEN EXCLUDED.provincial_key ELSE p.provincial_key END,
               provincial_key_as_of = GREATEST(p.provincial_key_as_of, 0)""",
        event.project_id, event.project_type, event.unit, event.township, event.name,
        event.project_year, event.provincial_key)


async def on_project_assessed(ctx: HandlerContext, event: ProjectAssessed) -> None:
    # An assessment restates the provincial key flag; only a newer one than we hold counts.
    await ctx.conn.execute(
        """INSERT INTO inspection.projects AS p (project_id, kind, project_type, unit, township,
                   provincial_key, provincial_key_as_of)
           VALUES ($1, 'facility', $2, $3, $4, $5, $6)
           ON CONFLICT (project_id) DO UPDATE SET
               provincial_key = EXCLUDED.provincial_key,
               provincial_key_as_of = EXCLUDED.provincial_key_as_of
           WHERE p.provincial_key_as_of < EXCLUDED.provincial_key_as_of""",
        event.project_id, event.project_type, event.unit, event.township, event.provincial_key,
        event.assessment_no)


async def on_project_retired(ctx: HandlerContext, event: ProjectRetired) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.projects AS p (project_id, kind, project_type, unit, township,
                   name, retired, retired_reason_code, retired_reason, retired_on)
           VALUES ($1, 'facility', $2, $3, $4, $5, true, $6, $7, $8)
           ON CONFLICT (project_id) DO UPDATE SET
               retired = true, retired_reason_code = EXCLUDED.retired_reason_code,
               retired_reason = EXCLUDED.retired_reason, retired_on = EXCLUDED.retired_on""",
        event.project_id, event.project_type, event.unit, event.township, event.name,
        event.reason_code.value, event.reason, event.retired_on)


async def on_programme_registered(ctx: HandlerContext, event: AdaptationProgrammeRegistered) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.projects (project_id, kind, project_type, unit, township, name,
                   project_year, registered)
           VALUES ($1, 'programme', $2, $3, $4, $5, $6, true)
           ON CONFLICT (project_id) DO UPDATE SET
               project_type = EXCLUDED.project_type, unit = EXCLUDED.unit,
               township = EXCLUDED.township, name = EXCLUDED.name,
               project_year = EXCLUDED.project_year, registered = true""",
        event.programme_id, event.project_type, event.unit, event.township, event.name, event.year)


async def on_households_registered(ctx: HandlerContext, event: HouseholdsRegistered) -> None:
    # The programme row, in case its registration has not arrived yet: every household needs a
    # programme to be labelled with on the draw list.
    programme_type = getattr(ctx.deps, "programme_type", _FALLBACK_PROGRAMME_TYPE)
    await ctx.conn.execute(
        """INSERT INTO inspection.projects (project_id, kind, project_type, unit, township,
                   project_year)
           VALUES ($1, 'programme', $2, $3, $4, $5) ON CONFLICT (project_id) DO NOTHING""",
        event.programme_id, programme_type, event.unit, event.township, event.year)
    # Only codes and places; the sealed name, address and phone stay in the registry's events.
    await ctx.conn.executemany(
        """INSERT INTO inspection.households (household_id, household_code, programme_id, unit,
                   township, adaptation_year)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (household_id) DO NOTHING""",
        [(h.household_id, h.household_code, event.programme_id, event.unit, event.township,
          h.adaptation_year) for h in event.households])


def registry_consumer() -> ConsumerSpec:
    return ConsumerSpec(name=CONSUMER_NAME, source=REGISTRY_CONTRACT, reactions={
        ProjectRegistered: on_project_registered,
        ProjectAssessed: on_project_assessed,
        ProjectRetired: on_project_retired,
        AdaptationProgrammeRegistered: on_programme_registered,
        HouseholdsRegistered: on_households_registered,
    })


# ---------------------------------------------------------------------------------------------
# Reading the view (for the handlers and the queries)


def _project(row: Any) -> ProjectView:
    return ProjectView(project_id=row["project_id"], unit=row["unit"], township=row["township"],
                       project_type=row["project_type"], provincial_key=row["provincial_key"],
                       retired=row["retired"], retired_reason=row["retired_reason"],
                       name=row["name"], project_year=row["project_year"])


async def project_view(db: asyncpg.Pool | asyncpg.Connection, project_id: str) -> ProjectView | None:
    row = await db.fetchrow("SELECT * FROM inspection.projects WHERE project_id = $1", project_id)
    return _project(row) if row is not None else None


async def registry_view(db: asyncpg.Pool | asyncpg.Connection
                        ) -> tuple[list[ProjectView], list[HouseholdView]]:
    """Every project and household the service knows, as the domain's frame inputs."""
    projects = [_project(r) for r in await db.fetch(
        "SELECT * FROM inspection.projects ORDER BY project_id")]
    rows = await db.fetch(
        """SELECT household_code, programme_id, unit, township, adaptation_year
             FROM inspection.households ORDER BY household_id""")
    return projects, sampling_households(rows)


def sampling_households(rows: list[Any]) -> list[HouseholdView]:
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
        views.append(HouseholdView(household_code=code, project_id=row["programme_id"],
                                   unit=row["unit"], township=row["township"]))
    return views
