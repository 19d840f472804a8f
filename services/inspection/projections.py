"""Read models of the inspection service: what it learned of the registry, and its own draws.

Projections only write views; nothing here sends a command or decides anything.

- **The registry view** (`inspection.on-registry`): projects, programmes and adapted households,
  built from the registry's events as they arrive over the bus (the queue keeps its name, so
  deployments keep their queue). It holds what a frame needs: each project's unit, township,
  type, provincial key flag, name, year and whether (and why) it was retired; each household's
  code, programme, unit and township. No names, addresses or phones of older people: household
  records arrive with those sealed, and the sealed fields are never stored here. Deliveries are
  at least once and a redelivered message can arrive after a later one, so every write is an
  upsert that a late or repeated event cannot undo: retirement is never reverted, the provincial
  flag is taken from the newest assessment seen, and a row first created by a later event gets
  the registration's details when the registration arrives.
- **The draws** (`inspection.projection-draws`): draws, strata, picks per unit, visits, findings
  and visit progress per unit, from the service's own sequenced events, exactly once (inbox row +
  these writes + the position in one transaction), so the counters in `visit_progress` can be
  incremented without being recounted. The 抽查名单 export is not built from these tables but
  from the draw stream itself (queries.draw_state), so the document anyone can verify is never a
  second representation that might drift.
"""
from __future__ import annotations

from typing import Any

from services.inspection import sampling
from services.inspection.config import InspectionDeps
from services.inspection.events import (
    CONTRACT,
    DiscretionaryPickAdded,
    EntropyCommitted,
    EntropyRevealed,
    FindingRecorded,
    FrameFrozen,
    HouseholdReplaced,
    SampleDrawn,
    TargetKind,
    VisitOutcome,
    VisitRecorded,
    VisitScheduled,
)
from services.registry.events import CONTRACT as REGISTRY_CONTRACT
from services.registry.events import (
    AdaptationProgrammeRegistered,
    HouseholdsRegistered,
    ProjectAssessed,
    ProjectRegistered,
    ProjectRetired,
)
from shared.consuming import ConsumerSpec, HandlerContext

Context = HandlerContext[InspectionDeps]

REGISTRY_VIEW = "inspection.on-registry"
DRAWS_PROJECTION = "inspection.projection-draws"


# ----- the registry view --------------------------------------------------------------------------


async def on_project_registered(ctx: Context, event: ProjectRegistered) -> None:
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


async def on_project_assessed(ctx: Context, event: ProjectAssessed) -> None:
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


async def on_project_retired(ctx: Context, event: ProjectRetired) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.projects AS p (project_id, kind, project_type, unit, township,
                   name, retired, retired_reason_code, retired_reason, retired_on)
           VALUES ($1, 'facility', $2, $3, $4, $5, true, $6, $7, $8)
           ON CONFLICT (project_id) DO UPDATE SET
               retired = true, retired_reason_code = EXCLUDED.retired_reason_code,
               retired_reason = EXCLUDED.retired_reason, retired_on = EXCLUDED.retired_on""",
        event.project_id, event.project_type, event.unit, event.township, event.name,
        event.reason_code.value, event.reason, event.retired_on)


async def on_programme_registered(ctx: Context, event: AdaptationProgrammeRegistered) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.projects (project_id, kind, project_type, unit, township, name,
                   project_year, registered)
           VALUES ($1, 'programme', $2, $3, $4, $5, $6, true)
           ON CONFLICT (project_id) DO UPDATE SET
               project_type = EXCLUDED.project_type, unit = EXCLUDED.unit,
               township = EXCLUDED.township, name = EXCLUDED.name,
               project_year = EXCLUDED.project_year, registered = true""",
        event.programme_id, event.project_type, event.unit, event.township, event.name, event.year)


async def on_households_registered(ctx: Context, event: HouseholdsRegistered) -> None:
    # The programme row, in case its registration has not arrived yet: every household needs a
    # programme to be labelled with on the draw list.
    programme_type = ctx.deps.programme_type
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


def registry_view_projection() -> ConsumerSpec:
    """Registry events over the bus (ServiceSpec.consumers): another service's contract."""
    return ConsumerSpec(name=REGISTRY_VIEW, source=REGISTRY_CONTRACT, reactions={
        ProjectRegistered: on_project_registered,
        ProjectAssessed: on_project_assessed,
        ProjectRetired: on_project_retired,
        AdaptationProgrammeRegistered: on_programme_registered,
        HouseholdsRegistered: on_households_registered,
    })


# ----- the draws ----------------------------------------------------------------------------------


async def on_frame_frozen(ctx: Context, event: FrameFrozen) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.draws (draw_id, title, stage, algorithm_version, units,
                   frames_digest, frozen_at, project_labels, household_labels)
           VALUES ($1, $2, 'frozen', $3, $4, $5, $6, $7, $8) ON CONFLICT (draw_id) DO NOTHING""",
        event.draw_id, event.title, event.algorithm_version, event.units, event.frames_digest,
        event.frozen_at,
        {p.project_id: p.model_dump(mode="json", exclude={"project_id"}) for p in event.projects},
        {h.household_code: h.model_dump(mode="json", exclude={"household_code"})
         for h in event.households})
    await ctx.conn.executemany(
        """INSERT INTO inspection.draw_strata (draw_id, stratum, unit, project_type, rule,
                   frame_digest, frame_size, excluded)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        [(event.draw_id, s.stratum, s.unit, s.project_type, s.rule, s.frame_digest,
          len(s.items) + sum(len(codes) for codes in s.townships.values()), len(s.excluded))
         for s in event.strata])
    await ctx.conn.executemany(
        "INSERT INTO inspection.visit_progress (draw_id, unit) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [(event.draw_id, unit) for unit in event.units])


async def on_entropy_committed(ctx: Context, event: EntropyCommitted) -> None:
    await ctx.conn.execute(
        """UPDATE inspection.draws SET stage = 'committed', entropy_statement = $2,
                  entropy_not_before = $3, committed_at = $4 WHERE draw_id = $1""",
        event.draw_id, event.statement, event.not_before, event.committed_at)


async def on_entropy_revealed(ctx: Context, event: EntropyRevealed) -> None:
    await ctx.conn.execute(
        "UPDATE inspection.draws SET stage = 'revealed', entropy = $2, revealed_at = $3 "
        "WHERE draw_id = $1", event.draw_id, event.entropy, event.revealed_at)


async def _labels(ctx: Context, draw_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    row = await ctx.conn.fetchrow(
        "SELECT project_labels, household_labels FROM inspection.draws WHERE draw_id = $1", draw_id)
    return (row["project_labels"], row["household_labels"]) if row else ({}, {})


def _household_pick(projects: dict[str, Any], households: dict[str, Any], code: str,
                    unit: str) -> dict[str, Any]:
    household = households.get(code, {})
    programme_id = household.get("project_id", "")
    programme = projects.get(programme_id, {})
    return dict(project_id=programme_id, name=programme.get("name", ""),
                township=household.get("township", ""), project_year=programme.get("project_year"),
                unit=household.get("unit", unit))


async def on_sample_drawn(ctx: Context, event: SampleDrawn) -> None:
    await ctx.conn.execute(
        "UPDATE inspection.draws SET stage = 'drawn', drawn_at = $2 WHERE draw_id = $1",
        event.draw_id, event.drawn_at)
    projects, households = await _labels(ctx, event.draw_id)
    picks = []
    sampled: dict[str, int] = {}
    for outcome in event.strata:
        await ctx.conn.execute(
            """UPDATE inspection.draw_strata SET sample_size = $3, replacements = $4,
                      no_eligible_project = $5, insufficient_sample = $6, township = $7
                WHERE draw_id = $1 AND stratum = $2""",
            event.draw_id, outcome.stratum, outcome.sample_size, len(outcome.replacements),
            outcome.no_eligible_project, outcome.insufficient_sample, outcome.township)
        households_rule = outcome.rule == sampling.Rule.TOWNSHIP_HOUSEHOLDS
        for number, target in enumerate(outcome.picks, start=1):
            if households_rule:
                kind, label = TargetKind.HOUSEHOLD, _household_pick(projects, households, target,
                                                                    outcome.unit)
            else:
                project = projects.get(target, {})
                kind, label = TargetKind.PROJECT, dict(
                    project_id=target, name=project.get("name", ""),
                    township=project.get("township", ""),
                    project_year=project.get("project_year"), unit=outcome.unit)
            picks.append((event.draw_id, kind.value, target, outcome.unit, outcome.stratum,
                          outcome.project_type, outcome.rule, number, label["project_id"],
                          label["name"], label["township"], label["project_year"]))
        sampled[outcome.unit] = sampled.get(outcome.unit, 0) + len(outcome.picks)
        await ctx.conn.execute(
            """UPDATE inspection.visit_progress SET
                      no_eligible_strata = no_eligible_strata || $3::text[],
                      insufficient_sample = insufficient_sample OR $4
                WHERE draw_id = $1 AND unit = $2""",
            event.draw_id, outcome.unit,
            [outcome.stratum] if outcome.no_eligible_project else [], outcome.insufficient_sample)
    await ctx.conn.executemany(
        """INSERT INTO inspection.draw_picks (draw_id, target_kind, target_id, unit, stratum,
                   project_type, selection, sequence_no, project_id, name, township, project_year)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING""",
        picks)
    await ctx.conn.executemany(
        "UPDATE inspection.visit_progress SET sampled = sampled + $3 WHERE draw_id = $1 AND unit = $2",
        [(event.draw_id, unit, count) for unit, count in sampled.items()])


async def on_discretionary_pick(ctx: Context, event: DiscretionaryPickAdded) -> None:
    project = event.project
    await ctx.conn.execute(
        """INSERT INTO inspection.draw_picks (draw_id, target_kind, target_id, unit, project_type,
                   selection, reason, project_id, name, township, project_year)
           VALUES ($1, 'project', $2, $3, $4, 'discretionary', $5, $2, $6, $7, $8)
           ON CONFLICT DO NOTHING""",
        event.draw_id, project.project_id, project.unit, project.project_type, event.reason,
        project.name, project.township, project.project_year)
    await ctx.conn.execute(
        "UPDATE inspection.visit_progress SET sampled = sampled + 1 WHERE draw_id = $1 AND unit = $2",
        event.draw_id, project.unit)


async def on_household_replaced(ctx: Context, event: HouseholdReplaced) -> None:
    await ctx.conn.execute(
        """UPDATE inspection.draw_picks SET in_sample = false, replaced_by = $3, reason_code = $4
            WHERE draw_id = $1 AND target_kind = 'household' AND target_id = $2""",
        event.draw_id, event.replaced_household, event.replacement_household, event.reason_code)
    projects, households = await _labels(ctx, event.draw_id)
    label = _household_pick(projects, households, event.replacement_household, event.unit)
    # Replacements are taken in sequence order, so the next one's place in the sequence is the
    # sample size plus the replacements taken so far.
    await ctx.conn.execute(
        """INSERT INTO inspection.draw_picks (draw_id, target_kind, target_id, unit, stratum,
                   project_type, selection, sequence_no, replaces, project_id, name, township,
                   project_year)
           SELECT $1, 'household', $2, $3, $4, s.project_type, 'replacement',
                  s.sample_size + 1 + (SELECT count(*) FROM inspection.draw_picks r
                                        WHERE r.draw_id = $1 AND r.stratum = $4
                                          AND r.selection = 'replacement'),
                  $5, $6, $7, $8, $9
             FROM inspection.draw_strata s WHERE s.draw_id = $1 AND s.stratum = $4
           ON CONFLICT DO NOTHING""",
        event.draw_id, event.replacement_household, event.unit, event.stratum,
        event.replaced_household, label["project_id"], label["name"], label["township"],
        label["project_year"])


async def on_visit_scheduled(ctx: Context, event: VisitScheduled) -> None:
    await ctx.conn.execute(
        """INSERT INTO inspection.visits (draw_id, visit_id, target_kind, target_id, unit,
                   project_type, scheduled_for, inspector_ids)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        event.draw_id, event.visit_id, event.target_kind.value, event.target_id, event.unit,
        event.project_type, event.scheduled_for, event.inspector_ids)
    await ctx.conn.execute(
        "UPDATE inspection.visit_progress SET scheduled = scheduled + 1 "
        "WHERE draw_id = $1 AND unit = $2", event.draw_id, event.unit)


async def on_visit_recorded(ctx: Context, event: VisitRecorded) -> None:
    await ctx.conn.execute(
        """UPDATE inspection.visits SET outcome = $3, unable_reason_code = $4, visited_on = $5,
                  inspector_ids = $6, checklist = $7, photo_hashes = $8
            WHERE draw_id = $1 AND visit_id = $2""",
        event.draw_id, event.visit_id, event.outcome.value, event.unable_reason_code,
        event.visited_on, event.inspector_ids,
        {answer.item: answer.answer for answer in event.checklist}, event.photo_hashes)
    outcome = event.outcome
    # A recorded visit is no longer an open one (the domain records each visit once).
    await ctx.conn.execute(
        """UPDATE inspection.visit_progress SET scheduled = scheduled - 1,
                  inspected = inspected + $3, passed = passed + $4,
                  problems_found = problems_found + $5, unable_to_enter = unable_to_enter + $6
            WHERE draw_id = $1 AND unit = $2""",
        event.draw_id, event.unit,
        int(outcome in (VisitOutcome.PASSED, VisitOutcome.PROBLEMS_FOUND)),
        int(outcome is VisitOutcome.PASSED), int(outcome is VisitOutcome.PROBLEMS_FOUND),
        int(outcome is VisitOutcome.UNABLE_TO_ENTER))


async def on_finding_recorded(ctx: Context, event: FindingRecorded) -> None:
    inserted = await ctx.conn.fetchval(
        """INSERT INTO inspection.findings (finding_id, draw_id, visit_id, project_id,
                   household_code, unit, project_type, project_name, township, project_year,
                   text, deadline, found_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (finding_id) DO NOTHING RETURNING true""",
        event.finding_id, event.draw_id, event.visit_id, event.project_id, event.household_code,
        event.unit, event.project_type, event.project_name, event.township, event.project_year,
        event.text, event.deadline, event.found_on)
    if not inserted:
        return
    await ctx.conn.execute(
        "UPDATE inspection.visits SET findings = findings + 1 WHERE draw_id = $1 AND visit_id = $2",
        event.draw_id, event.visit_id)
    await ctx.conn.execute(
        "UPDATE inspection.visit_progress SET findings = findings + 1 "
        "WHERE draw_id = $1 AND unit = $2", event.draw_id, event.unit)


def draw_projection() -> ConsumerSpec:
    """Tails the service's own sequenced events (ServiceSpec.projections)."""
    return ConsumerSpec(name=DRAWS_PROJECTION, source=CONTRACT, reactions={
        FrameFrozen: on_frame_frozen,
        EntropyCommitted: on_entropy_committed,
        EntropyRevealed: on_entropy_revealed,
        SampleDrawn: on_sample_drawn,
        DiscretionaryPickAdded: on_discretionary_pick,
        HouseholdReplaced: on_household_replaced,
        VisitScheduled: on_visit_scheduled,
        VisitRecorded: on_visit_recorded,
        FindingRecorded: on_finding_recorded,
    })
