"""Read models of the notifier's own events (tables in sql/0401_read_models.sql).

Each projection refolds the stream the event belongs to from the store, in the delivery's
transaction, and writes the state only if it is newer than the row's (`version`): redelivered or
reordered events cannot roll a row back. An obligation that changed wakes every instance's
scheduler (`pg_notify` is delivered at commit), so a new or moved due date is never slept through.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from services.notifier import events as e
from services.notifier.domain.obligations import fold, obligation_spec
from services.notifier.domain.reminders import reminder_spec
from services.notifier.handlers import NotifierDeps
from services.notifier.liveness import CALENDAR_CHANNEL
from shared.consuming import ConsumerSpec, HandlerContext

EVENTS = e.CONTRACT.registry()
OBLIGATIONS_PROJECTION = "notifier.projection-obligations"
REMINDERS_PROJECTION = "notifier.projection-reminders"


async def on_obligation_event(ctx: HandlerContext[NotifierDeps], event: Any) -> None:
    spec = obligation_spec(event.obligation_id, ctx.deps.campaign)
    recorded = await ctx.store.read_stream(spec.stream_id, conn=ctx.conn)
    if not recorded:
        return
    state = fold(spec.initial, [EVENTS.load_recorded(r) for r in recorded])
    await ctx.conn.execute(
        """INSERT INTO notifier.obligations AS o (obligation_id, unit, kind, status, due_on,
                   state, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (obligation_id) DO UPDATE SET
               unit = EXCLUDED.unit, kind = EXCLUDED.kind, status = EXCLUDED.status,
               due_on = EXCLUDED.due_on, state = EXCLUDED.state, version = EXCLUDED.version
           WHERE o.version < EXCLUDED.version""",
        state.obligation_id, state.unit, state.kind.value, state.status.value, state.due_on,
        json.dumps(state.model_dump(mode="json"), ensure_ascii=False),
        recorded[-1].stream_version)
    await ctx.conn.execute("SELECT pg_notify($1, $2)", CALENDAR_CHANNEL, state.obligation_id)


async def on_reminder_event(ctx: HandlerContext[NotifierDeps], event: Any) -> None:
    spec = reminder_spec(event.reminder_id)
    recorded = await ctx.store.read_stream(spec.stream_id, conn=ctx.conn)
    state = spec.initial
    claimed_at = None
    for item in recorded:
        loaded = EVENTS.load_recorded(item)
        state = spec.evolve(state, loaded)
        if isinstance(loaded, e.ReminderClaimed) and claimed_at is None:
            claimed_at = datetime.fromisoformat(item.metadata["occurred_at"])
    claim = state.claim
    if claim is None or state.status is None:
        return
    version = recorded[-1].stream_version
    written = await ctx.conn.fetchval(
        """INSERT INTO notifier.reminders AS r (reminder_id, obligation_id, unit, obligation_kind,
                   kind, audience, scheduled_for, due_on, status, attempt, instance_id,
                   message_id, subject, claimed_at, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (reminder_id) DO UPDATE SET
               status = EXCLUDED.status, attempt = EXCLUDED.attempt,
               instance_id = EXCLUDED.instance_id, version = EXCLUDED.version
           WHERE r.version < EXCLUDED.version
           RETURNING true""",
        claim.reminder_id, claim.obligation_id, claim.unit, claim.obligation_kind.value,
        claim.kind.value, claim.audience.value, claim.scheduled_for, claim.due_on,
        state.status.value, claim.attempt, claim.instance_id, claim.message_id, claim.subject,
        claimed_at, version)
    if not written:
        return
    for delivery in claim.deliveries:
        outcome = state.outcomes.get(delivery.channel)
        await ctx.conn.execute(
            """INSERT INTO notifier.deliveries AS d (reminder_id, channel, recipient_masked,
                       outcome, attempts, reason, recorded_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (reminder_id, channel) DO UPDATE SET
                   outcome = EXCLUDED.outcome, attempts = EXCLUDED.attempts,
                   reason = EXCLUDED.reason, recorded_at = EXCLUDED.recorded_at""",
            claim.reminder_id, delivery.channel.value, delivery.recipient_masked,
            "pending" if outcome is None else "sent" if isinstance(outcome, e.ReminderSent)
            else "failed",
            None if outcome is None else outcome.attempts,
            outcome.reason if isinstance(outcome, e.ReminderFailed) else None,
            None if outcome is None else (outcome.sent_at if isinstance(outcome, e.ReminderSent)
                                          else outcome.failed_at))


PROJECTIONS = [
    ConsumerSpec(name=OBLIGATIONS_PROJECTION, source=e.CONTRACT,
                 reactions={cls: on_obligation_event for cls in e.OBLIGATION_EVENTS}),
    ConsumerSpec(name=REMINDERS_PROJECTION, source=e.CONTRACT,
                 reactions={cls: on_reminder_event for cls in e.REMINDER_EVENTS}),
]
