"""The notifier's read side: the SQL behind its routes and its scheduler, over its read models
(sql/0401_read_models.sql, written by projections.py).

Every function takes the unit scope already decided by the route (a district role's own unit
whatever it asked); none decides access itself.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.notifier.domain.calendar import ReminderStatus
from services.notifier.domain.obligations import ObligationState, campaign_obligations
from shared.campaign import Campaign


@dataclass(frozen=True)
class ReminderRecord:
    reminder_id: uuid.UUID
    obligation_id: str
    status: ReminderStatus
    instance_id: str


async def obligations(conn: Any, campaign: Campaign, *, unit: str | None = None
                      ) -> list[ObligationState]:
    """Every obligation: the campaign's deadlines of each unit (as the file says, or as their
    events have changed them) and every item and visit the notifier has heard of."""
    rows = await conn.fetch(
        "SELECT state FROM notifier.obligations WHERE $1::text IS NULL OR unit = $1", unit)
    known = {state.obligation_id: state for state in campaign_obligations(campaign)
             if unit is None or state.unit == unit}
    for row in rows:
        state = ObligationState.model_validate(row["state"])
        known[state.obligation_id] = state
    return sorted(known.values(), key=lambda s: (s.unit, s.due_on or datetime.max.date(),
                                                 s.obligation_id))


async def reminder_records(conn: Any, *, unit: str | None = None
                           ) -> dict[uuid.UUID, ReminderRecord]:
    rows = await conn.fetch(
        "SELECT reminder_id, obligation_id, status, instance_id FROM notifier.reminders "
        "WHERE $1::text IS NULL OR unit = $1", unit)
    return {row["reminder_id"]: ReminderRecord(row["reminder_id"], row["obligation_id"],
                                               ReminderStatus(row["status"]), row["instance_id"])
            for row in rows}


async def unfinished_claims(conn: Any) -> list[ReminderRecord]:
    rows = await conn.fetch(
        "SELECT reminder_id, obligation_id, status, instance_id FROM notifier.reminders "
        "WHERE status = 'claimed' ORDER BY scheduled_for")
    return [ReminderRecord(row["reminder_id"], row["obligation_id"],
                           ReminderStatus(row["status"]), row["instance_id"]) for row in rows]


async def sent_reminders(conn: Any, *, unit: str | None, status: str | None, limit: int,
                         offset: int) -> tuple[list[Any], int]:
    """What was sent, to whom (masked), by which channel, with what result: one row per
    (reminder, channel), newest first."""
    where = ("($1::text IS NULL OR r.unit = $1) AND "
             "($2::text IS NULL OR d.outcome = $2 OR r.status = $2)")
    total = await conn.fetchval(
        f"SELECT count(*) FROM notifier.reminders r JOIN notifier.deliveries d USING (reminder_id) "
        f"WHERE {where}", unit, status)
    rows = await conn.fetch(
        f"""SELECT r.reminder_id, r.obligation_id, r.unit, r.obligation_kind, r.kind, r.audience,
                   r.scheduled_for, r.due_on, r.status, r.attempt, r.message_id, r.subject,
                   r.claimed_at, d.channel, d.recipient_masked, d.outcome, d.attempts, d.reason,
                   d.recorded_at
              FROM notifier.reminders r JOIN notifier.deliveries d USING (reminder_id)
             WHERE {where}
             ORDER BY r.scheduled_for DESC, r.unit, r.kind, d.channel
             LIMIT $3 OFFSET $4""", unit, status, limit, offset)
    return rows, total
