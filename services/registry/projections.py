"""Read models of the registry's own events (tables in services/registry/sql/0100_read_models.sql).

They run on the sequenced ledger through the shell's exactly-once machinery (inbox row + these
writes + the position in one transaction), in both transports. Queries read these tables and are
eventually consistent; a command's response carries the resulting state itself.

No personal field is ever opened here: households and liaisons are stored sealed (and masked where
the event already carries a masked copy); the API opens them for masking or for an authorised,
logged reveal.
"""
from __future__ import annotations

from services.registry.events import (
    CONTRACT,
    AdaptationProgrammeRegistered,
    HouseholdsRegistered,
    LedgerEntryAdded,
    LedgerEntryCleared,
    LedgerEntryRectified,
    LedgerRectificationReopened,
    LiaisonRegistered,
    OperatorChanged,
    ProjectAssessed,
    ProjectRegistered,
    ProjectRetired,
    ServicesChanged,
)
from services.registry.handlers import RegistryDeps
from shared.consuming import ConsumerSpec, HandlerContext

PROJECTS_PROJECTION = "registry.projection-projects"
PROGRAMMES_PROJECTION = "registry.projection-programmes"
LIAISONS_PROJECTION = "registry.projection-liaisons"


def _meets_rule(ctx: HandlerContext[RegistryDeps], services: tuple[str, ...]) -> bool:
    return ctx.deps.campaign.meets_service_rule(services)


# ----- projects and the 台账 --------------------------------------------------------------------


async def on_project_registered(ctx: HandlerContext[RegistryDeps], event: ProjectRegistered) -> None:
    operator = event.operator
    await ctx.conn.execute(
        """INSERT INTO registry.projects (project_id, project_type, name, unit, township,
                   township_code, village, project_year, provincial_key, operator_kind,
                   operator_name, contract_start, contract_end, services, meets_service_rule,
                   claimed_status, status, status_reasons, registered_at, updated_at, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $19, $20)
           ON CONFLICT (project_id) DO NOTHING""",
        event.project_id, event.project_type, event.name, event.unit, event.township,
        event.township_code, event.village, event.project_year, event.provincial_key,
        operator.kind.value, operator.name, operator.contract_start, operator.contract_end,
        list(event.services), _meets_rule(ctx, event.services), event.claimed_status.value,
        event.status.value, list(event.status_reasons), ctx.delivery.occurred_at,
        ctx.delivery.stream_version)


async def on_operator_changed(ctx: HandlerContext[RegistryDeps], event: OperatorChanged) -> None:
    operator = event.operator
    await ctx.conn.execute(
        """UPDATE registry.projects SET operator_kind = $2, operator_name = $3, contract_start = $4,
                  contract_end = $5, updated_at = $6, version = $7 WHERE project_id = $1""",
        event.project_id, operator.kind.value, operator.name, operator.contract_start,
        operator.contract_end, ctx.delivery.occurred_at, ctx.delivery.stream_version)


async def on_services_changed(ctx: HandlerContext[RegistryDeps], event: ServicesChanged) -> None:
    await ctx.conn.execute(
        """UPDATE registry.projects SET services = $2, meets_service_rule = $3, status = $4,
                  status_reasons = $5, updated_at = $6, version = $7 WHERE project_id = $1""",
        event.project_id, list(event.services), event.meets_service_rule, event.status.value,
        list(event.status_reasons), ctx.delivery.occurred_at, ctx.delivery.stream_version)


async def on_project_assessed(ctx: HandlerContext[RegistryDeps], event: ProjectAssessed) -> None:
    await ctx.conn.execute(
        """UPDATE registry.projects SET services = $2, meets_service_rule = $3, claimed_status = $4,
                  status = $5, status_reasons = $6, assessments = $7, last_assessed_on = $8,
                  updated_at = $9, version = $10 WHERE project_id = $1""",
        event.project_id, list(event.services), _meets_rule(ctx, event.services),
        event.claimed_status.value, event.status.value, list(event.status_reasons),
        event.assessment_no, event.assessed_on, ctx.delivery.occurred_at,
        ctx.delivery.stream_version)


async def on_project_retired(ctx: HandlerContext[RegistryDeps], event: ProjectRetired) -> None:
    await ctx.conn.execute(
        """UPDATE registry.projects SET status = 'retired', retired_reason_code = $2,
                  retired_reason = $3, retired_on = $4, updated_at = $5, version = $6
           WHERE project_id = $1""",
        event.project_id, event.reason_code.value, event.reason, event.retired_on,
        ctx.delivery.occurred_at, ctx.delivery.stream_version)


async def on_ledger_entry_added(ctx: HandlerContext[RegistryDeps], event: LedgerEntryAdded) -> None:
    await ctx.conn.execute(
        """INSERT INTO registry.ledger (entry_id, project_id, project_type, project_name,
                   project_year, unit, township, village, provincial_key, reason, reason_details,
                   status, listed_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (entry_id) DO NOTHING""",
        event.entry_id, event.project_id, event.project_type, event.project_name,
        event.project_year, event.unit, event.township, event.village, event.provincial_key,
        event.reason, list(event.reason_details), event.status.value, event.listed_on)
    if event.supersedes is not None:
        await ctx.conn.execute(
            "UPDATE registry.ledger SET superseded_by = $2, superseded_on = $3 WHERE entry_id = $1",
            event.supersedes, event.entry_id, event.listed_on)
    await ctx.conn.execute(
        "UPDATE registry.projects SET on_ledger = true, ledger_rectified = false, version = $2 "
        "WHERE project_id = $1", event.project_id, ctx.delivery.stream_version)


async def on_ledger_entry_rectified(ctx: HandlerContext[RegistryDeps],
                                    event: LedgerEntryRectified) -> None:
    await ctx.conn.execute(
        """UPDATE registry.ledger SET rectified_problem_id = $2, rectified_seq_no = $3,
                  rectified_at = $4, rectified_by = $5, rectified_verifier_role = $6,
                  rectification_conclusion = $7, rectification_event_id = $8
           WHERE entry_id = $1""",
        event.entry_id, event.problem_id, event.seq_no, event.verified_at, event.verified_by,
        event.verifier_role, event.conclusion, event.verification_event_id)
    await ctx.conn.execute(
        "UPDATE registry.projects SET ledger_rectified = ledger_rectified OR $2, version = $3 "
        "WHERE project_id = $1", event.project_id, event.entry_open, ctx.delivery.stream_version)


async def on_ledger_rectification_reopened(ctx: HandlerContext[RegistryDeps],
                                           event: LedgerRectificationReopened) -> None:
    await ctx.conn.execute(
        """UPDATE registry.ledger SET rectified_problem_id = NULL, rectified_seq_no = NULL,
                  rectified_at = NULL, rectified_by = NULL, rectified_verifier_role = NULL,
                  rectification_conclusion = NULL, rectification_event_id = NULL
           WHERE entry_id = $1""", event.entry_id)
    await ctx.conn.execute(
        "UPDATE registry.projects SET ledger_rectified = false, version = $2 WHERE project_id = $1",
        event.project_id, ctx.delivery.stream_version)


async def on_ledger_entry_cleared(ctx: HandlerContext[RegistryDeps], event: LedgerEntryCleared) -> None:
    await ctx.conn.execute(
        """UPDATE registry.ledger SET cleared_on = $2, cleared_assessment_no = $3,
                  cleared_by_assessor = $4, clearing_evidence = $5, clearing_attachments = $6
           WHERE entry_id = $1""",
        event.entry_id, event.cleared_on, event.assessment_no, event.assessor, event.evidence,
        list(event.attachment_hashes))
    await ctx.conn.execute(
        "UPDATE registry.projects SET on_ledger = false, ledger_rectified = false, version = $2 "
        "WHERE project_id = $1", event.project_id, ctx.delivery.stream_version)


# ----- home adaptation ----------------------------------------------------------------------------


async def on_programme_registered(ctx: HandlerContext[RegistryDeps], event: AdaptationProgrammeRegistered) -> None:
    await ctx.conn.execute(
        """INSERT INTO registry.programmes (programme_id, project_type, name, unit, township,
                   township_code, year, registered_at, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (programme_id) DO NOTHING""",
        event.programme_id, event.project_type, event.name, event.unit, event.township,
        event.township_code, event.year, ctx.delivery.occurred_at, ctx.delivery.stream_version)


async def on_households_registered(ctx: HandlerContext[RegistryDeps], event: HouseholdsRegistered) -> None:
    # One statement for the whole batch: an import brings thousands of households in few events.
    households = event.households
    await ctx.conn.execute(
        """INSERT INTO registry.households (household_id, programme_id, household_code, unit,
                   township, village, adaptation_year, items, acceptance_date, subject_id,
                   name_sealed, address_sealed, phone_sealed)
           SELECT h.household_id, $1, h.household_code, $2, $3, h.village, h.adaptation_year,
                  string_to_array(h.items, ','), h.acceptance_date, h.subject_id, h.name_sealed,
                  h.address_sealed, h.phone_sealed
           FROM unnest($4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::date[],
                       $10::text[], $11::text[], $12::text[], $13::text[])
                AS h(household_id, household_code, village, adaptation_year, items,
                     acceptance_date, subject_id, name_sealed, address_sealed, phone_sealed)
           ON CONFLICT (household_id) DO NOTHING""",
        event.programme_id, event.unit, event.township,
        [h.household_id for h in households], [h.household_code for h in households],
        [h.village for h in households], [h.adaptation_year for h in households],
        [",".join(h.items) for h in households], [h.acceptance_date for h in households],
        [h.subject_id for h in households], [h.name_sealed for h in households],
        [h.address_sealed for h in households], [h.phone_sealed for h in households])
    await ctx.conn.execute(
        """UPDATE registry.programmes SET version = $2,
                  households = (SELECT count(*) FROM registry.households WHERE programme_id = $1)
           WHERE programme_id = $1""",
        event.programme_id, ctx.delivery.stream_version)


# ----- liaisons (附件1) ---------------------------------------------------------------------------


async def on_liaison_registered(ctx: HandlerContext[RegistryDeps], event: LiaisonRegistered) -> None:
    await ctx.conn.execute(
        """INSERT INTO registry.liaisons AS l (unit, role, version, name, gender, position,
                   subject_id, mobile_sealed, mobile_masked, office_phone_sealed,
                   office_phone_masked, submitted_late, registered_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (unit, role) DO UPDATE SET version = EXCLUDED.version, name = EXCLUDED.name,
               gender = EXCLUDED.gender, position = EXCLUDED.position,
               subject_id = EXCLUDED.subject_id, mobile_sealed = EXCLUDED.mobile_sealed,
               mobile_masked = EXCLUDED.mobile_masked,
               office_phone_sealed = EXCLUDED.office_phone_sealed,
               office_phone_masked = EXCLUDED.office_phone_masked,
               submitted_late = EXCLUDED.submitted_late, registered_at = EXCLUDED.registered_at
           WHERE l.version < EXCLUDED.version""",
        event.unit, event.role.value, event.version, event.name, event.gender.value,
        event.position, event.subject_id, event.mobile_sealed, event.mobile_masked,
        event.office_phone_sealed, event.office_phone_masked, event.submitted_late,
        ctx.delivery.occurred_at)


def projects_projection() -> ConsumerSpec:
    return ConsumerSpec(name=PROJECTS_PROJECTION, source=CONTRACT, reactions={
        ProjectRegistered: on_project_registered, OperatorChanged: on_operator_changed,
        ServicesChanged: on_services_changed, ProjectAssessed: on_project_assessed,
        ProjectRetired: on_project_retired, LedgerEntryAdded: on_ledger_entry_added,
        LedgerEntryRectified: on_ledger_entry_rectified,
        LedgerRectificationReopened: on_ledger_rectification_reopened,
        LedgerEntryCleared: on_ledger_entry_cleared})


def programmes_projection() -> ConsumerSpec:
    return ConsumerSpec(name=PROGRAMMES_PROJECTION, source=CONTRACT, reactions={
        AdaptationProgrammeRegistered: on_programme_registered,
        HouseholdsRegistered: on_households_registered})


def liaisons_projection() -> ConsumerSpec:
    return ConsumerSpec(name=LIAISONS_PROJECTION, source=CONTRACT, reactions={
        LiaisonRegistered: on_liaison_registered})


def all_projections() -> list[ConsumerSpec]:
    return [projects_projection(), programmes_projection(), liaisons_projection()]
