"""What the rectification service does with other services' events (their `events.py` only).

- "rectification.on-registry": this service's own view of projects (unit, township, name, year,
  type, operating status, ledger state), and each LedgerEntryAdded opens an automatic item
  (source = ledger) unless one is still open for the same project and reason.
- "rectification.on-inspection": each FindingRecorded opens a city-found item (source = city).

Exactly once under redelivery, twice over: the inbox row (shared/consuming.py) makes a duplicate
delivery a no-op, and the item's id derives from the registry's entry id / the finding id
(`domain.ledger_problem_id`, `finding_problem_id`), so even a second registration attempt is
recognised by the domain and by the store (deterministic event ids, expected NO_STREAM).
"""
from __future__ import annotations

import uuid

from services.inspection.events import CONTRACT as INSPECTION_CONTRACT
from services.inspection.events import FindingRecorded
from services.registry.events import CONTRACT as REGISTRY_CONTRACT
from services.registry.events import (AdaptationProgrammeRegistered, LedgerEntryAdded,
                                      LedgerEntryCleared, ProjectAssessed, ProjectRegistered,
                                      ProjectRetired, ServicesChanged)
from shared.consuming import ConsumerSpec, HandlerContext
from shared.logging import get_logger
from shared.messages import SYSTEM_ACTOR

from . import domain as d
from .handlers import load_problem, reaction_event_ids, register_problem

log = get_logger()

# ------------------------------------------------------------------------------------------
# The view of projects


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


async def _identity(ctx: HandlerContext, project_id: str, *, project_type: str | None, name: str,
                    unit: str, township: str, year: int | None, registered: bool = False) -> None:
    await ctx.conn.execute(_UPSERT_IDENTITY, project_id, project_type, name, unit, township, year,
                           registered)


async def on_project_registered(ctx: HandlerContext, event: ProjectRegistered) -> None:
    await _identity(ctx, event.project_id, project_type=event.project_type, name=event.name,
                    unit=event.unit, township=event.township, year=event.project_year,
                    registered=True)
    await ctx.conn.execute(_SET_STATUS, event.project_id, event.status.value,
                           ctx.delivery.stream_version)


async def on_programme_registered(ctx: HandlerContext, event: AdaptationProgrammeRegistered) -> None:
    await _identity(ctx, event.programme_id, project_type=event.project_type, name=event.name,
                    unit=event.unit, township=event.township, year=event.year, registered=True)


async def on_status_changed(ctx: HandlerContext,
                            event: ServicesChanged | ProjectAssessed | ProjectRetired) -> None:
    name = event.name if isinstance(event, ProjectRetired) else ""
    await _identity(ctx, event.project_id, project_type=event.project_type, name=name,
                    unit=event.unit, township=event.township, year=None)
    status = "retired" if isinstance(event, ProjectRetired) else event.status.value
    await ctx.conn.execute(_SET_STATUS, event.project_id, status, ctx.delivery.stream_version)


async def on_ledger_entry_cleared(ctx: HandlerContext, event: LedgerEntryCleared) -> None:
    """Off the registry's ledger. The item stays as it is: only a verified close-out closes it."""
    await _identity(ctx, event.project_id, project_type=event.project_type, name="",
                    unit=event.unit, township=event.township, year=None)
    await ctx.conn.execute(
        """UPDATE rectification.projects SET on_ledger = false, ledger_version = $3
            WHERE project_id = $1 AND ledger_entry_id = $2 AND ledger_version < $3""",
        event.project_id, event.entry_id, ctx.delivery.stream_version)


# ------------------------------------------------------------------------------------------
# Automatic items


async def _ledger_items_of(ctx: HandlerContext, project_id: str) -> list[d.ProblemState]:
    """Every ledger item of the project, folded from the store. The ids come from this consumer's
    own links (written in its transactions, so never behind) and from the read model (items
    registered through the API)."""
    rows = await ctx.conn.fetch(
        """SELECT problem_id FROM rectification.ledger_links
            WHERE project_id = $1 AND problem_id IS NOT NULL
           UNION
           SELECT problem_id FROM rectification.problems
            WHERE project_id = $1 AND source = 'ledger'""", project_id)
    return [await load_problem(ctx.store, row["problem_id"], conn=ctx.conn) for row in rows]


async def on_ledger_entry_added(ctx: HandlerContext, event: LedgerEntryAdded) -> None:
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

    config = ctx.deps
    items = await _ledger_items_of(ctx, event.project_id)
    cmd = d.registration_for_ledger_entry(
        ledger_entry_id=event.entry_id, project_id=event.project_id, reason=event.reason,
        reason_details=event.reason_details, open_ledger_items=d.open_ledger_keys(items),
        now=ctx.now, rules=config.rules)
    opened: uuid.UUID | None = None
    blocked_by: list[uuid.UUID] = []
    if cmd is None:
        blocked_by = [item.problem_id for item in items if item.is_open
                      and item.ledger_reason == event.reason and item.problem_id is not None]
    else:
        # The entry itself carries everything 附件2 needs, as of the moment it was listed.
        project = d.ProjectRef(project_id=event.project_id, unit=event.unit,
                               township=event.township, name=event.project_name,
                               year=event.project_year)
        await register_problem(ctx.store, cmd, project, actor=SYSTEM_ACTOR, now=ctx.now,
                               rules=config.rules, conn=ctx.conn,
                               correlation_id=ctx.correlation_id, causation_id=ctx.causation_id,
                               event_ids=reaction_event_ids(ctx))
        opened = cmd.problem_id
    await ctx.conn.execute(
        """INSERT INTO rectification.ledger_links (entry_id, project_id, reason, problem_id,
                   blocked_by, received_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (entry_id) DO NOTHING""",
        event.entry_id, event.project_id, event.reason, opened, blocked_by, ctx.now)


async def on_finding_recorded(ctx: HandlerContext, event: FindingRecorded) -> None:
    config = ctx.deps
    row = await ctx.conn.fetchrow(
        "SELECT unit, township, name, project_year FROM rectification.projects WHERE project_id = $1",
        event.project_id)
    # This service's view of the project if it has one; else the finding's own project fields
    # (the registry's events travel on another queue and may not have arrived yet).
    year = (row["project_year"] if row else None) or event.project_year or 0
    project = d.ProjectRef(
        project_id=event.project_id, unit=row["unit"] if row else event.unit,
        township=row["township"] if row else event.township,
        name=(row["name"] if row and row["name"] else event.project_name), year=year)
    if year == 0:
        log.warning("finding_without_project_year", finding_id=event.finding_id,
                    project_id=event.project_id)
    text = event.text
    if event.household_code:
        text = f"{text}（改造户编号 {event.household_code}）"  # a code, never a name or address
    cmd = d.registration_for_finding(
        finding_id=event.finding_id, project_id=event.project_id, unit=event.unit, text=text,
        deadline=event.deadline, project=project, now=ctx.now, rules=config.rules)
    await register_problem(ctx.store, cmd, project, actor=SYSTEM_ACTOR, now=ctx.now,
                           rules=config.rules, conn=ctx.conn, correlation_id=ctx.correlation_id,
                           causation_id=ctx.causation_id, event_ids=reaction_event_ids(ctx))


CONSUMERS = [
    ConsumerSpec(name="rectification.on-registry", source=REGISTRY_CONTRACT, reactions={
        ProjectRegistered: on_project_registered,
        AdaptationProgrammeRegistered: on_programme_registered,
        ServicesChanged: on_status_changed,
        ProjectAssessed: on_status_changed,
        ProjectRetired: on_status_changed,
        LedgerEntryAdded: on_ledger_entry_added,
        LedgerEntryCleared: on_ledger_entry_cleared,
    }),
    ConsumerSpec(name="rectification.on-inspection", source=INSPECTION_CONTRACT, reactions={
        FindingRecorded: on_finding_recorded,
    }),
]
