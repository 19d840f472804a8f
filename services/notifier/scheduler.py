"""The scheduler: sleep until the next reminder is due, claim it, send it, record the outcome.

One background loop per process, started and stopped with it (ServiceSpec.background):

1. **pass**: read every obligation (read model + campaign file) and every claimed reminder; each
   reminder whose status is DUE now (domain/calendar.py) is claimed through the pipeline
   (ClaimReminder: appended at the version read, so one instance wins); the winner sends it on
   each channel, with retries, and records each outcome (RecordDelivery). Unfinished claims of
   this instance (a lost commit acknowledgement) are resumed; unfinished claims of another are
   taken over only once that instance is provably gone (liveness.py).
2. **sleep** until the next reminder moment (`Clock.sleep_until`: no polling), or until woken:
   an obligation changed (the projection's NOTIFY, from any instance), the clock moved (a
   simulated clock), or the process is stopping. While another instance's claim is unfinished
   (or a job of ours failed), the sleep is capped at `takeover_check_seconds`, so a crashed
   peer's claim is taken over and our own unfinished work is resumed.

Exactly once, end to end: the claim makes two live instances (or a restart and a redelivery)
send a reminder once; the Message-ID derived from the reminder id bounds the one remaining
window (sent, then a crash before the outcome was recorded: the take-over resends the same
message under the same Message-ID, which a receiving server can drop). ADR 0006.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

from prometheus_client import Counter

from services.notifier import commands as c
from services.notifier import directory
from services.notifier import queries as q
from services.notifier.channels import OutgoingMessage, deliver
from services.notifier.domain.calendar import ReminderStatus, next_moment, plan, status_of
from services.notifier.domain.reminders import reminder_spec
from services.notifier.events import (
    CONTRACT,
    Channel,
    PlannedDelivery,
    ReminderClaimed,
    ReminderFailed,
    ReminderSent,
)
from services.notifier.handlers import NotifierDeps
from shared.errors import LookbackError
from shared.logging import get_logger
from shared.messages import SYSTEM_ACTOR
from shared.service import Runtime

log = get_logger()
EVENTS = CONTRACT.registry()
ERROR_PAUSE_SECONDS = 5.0


class Scheduler:
    def __init__(self, runtime: Runtime[NotifierDeps]) -> None:
        self.runtime = runtime
        self.deps = runtime.deps
        self.wake = asyncio.Event()
        self.in_flight: set[uuid.UUID] = set()
        self.sends = asyncio.Semaphore(self.deps.settings.parallel_sends)
        self.deliveries = Counter("lookback_notifier_deliveries_total",
                                  "Reminder deliveries by channel and outcome",
                                  ["channel", "outcome"], registry=runtime.metrics.registry)

    # ----- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        await self.load_directory()
        await self.deps.liveness.start(self.runtime.pool, self._notified)
        watcher = asyncio.create_task(self._watch_stop())
        log.info("scheduler_started", service="notifier", instance=self.deps.liveness.instance_id)
        try:
            while not self.runtime.stopping.is_set():
                self.wake.clear()   # before the pass: a change during it wakes the next sleep
                at_most: float | None = None
                try:
                    next_at, recheck = await self.pass_once()
                    if recheck:
                        at_most = self.deps.settings.takeover_check_seconds
                except Exception as exc:  # the database away: try again after a pause
                    log.warning("scheduler_pass_failed", service="notifier",
                                error=type(exc).__name__, reason=str(exc)[:300])
                    next_at, at_most = None, ERROR_PAUSE_SECONDS
                await self.deps.clock.sleep_until(next_at, wake=self.wake, at_most=at_most)
        finally:
            watcher.cancel()
            await self.deps.liveness.stop()

    def _notified(self, *_: Any) -> None:
        self.wake.set()

    async def _watch_stop(self) -> None:
        await self.runtime.stopping.wait()
        self.wake.set()

    async def load_directory(self) -> None:
        deps = self.deps
        examples = (directory.example_contacts(deps.campaign) if deps.settings.example_contacts
                    else ())
        filed, filled = await directory.load_directory(
            self.runtime.pool, from_file=deps.contacts_from_file, examples=examples)
        log.info("contacts_loaded", service="notifier", from_file=filed, examples=filled)

    # ----- one pass --------------------------------------------------------------------------

    async def pass_once(self) -> tuple[Any, bool]:
        """Claim and send what is due now; return the next moment, and whether to look again
        soon (another instance's claim is unfinished, or a job of ours failed)."""
        deps, campaign = self.deps, self.deps.campaign
        now = deps.clock()
        instance = await deps.liveness.ensure()
        async with self.runtime.pool.acquire() as conn:
            states = await q.obligations(conn, campaign)
            records = await q.reminder_records(conn)
        jobs: list[Awaitable[None]] = []
        for state in states:
            if not state.is_open:
                continue
            for reminder in plan(state, campaign):
                record = records.get(reminder.reminder_id)
                status = status_of(reminder, state, record.status if record else None, now,
                                   campaign)
                if status is ReminderStatus.DUE:
                    jobs.append(self._claim_and_send(reminder.reminder_id, state.obligation_id,
                                                     instance))
        waiting_on_others = False
        for record in records.values():
            if record.status is not ReminderStatus.CLAIMED or record.reminder_id in self.in_flight:
                continue
            if record.instance_id == instance:
                jobs.append(self._resume(record.reminder_id))
            else:
                waiting_on_others = True
                jobs.append(self._claim_and_send(record.reminder_id, record.obligation_id,
                                                 instance, take_over_from=record.instance_id))
        # One reminder's trouble (the database away mid-send) must not stop the others: each
        # job is tried again by a later pass (an unfinished claim of ours is resumed).
        recheck = waiting_on_others
        for outcome in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(outcome, Exception):
                recheck = True
                log.warning("reminder_job_failed", service="notifier",
                            error=type(outcome).__name__, reason=str(outcome)[:300])
        return next_moment(states, now, campaign), recheck

    async def _claim_and_send(self, reminder_id: uuid.UUID, obligation_id: str, instance: str,
                              take_over_from: str | None = None) -> None:
        if reminder_id in self.in_flight:
            return
        self.in_flight.add(reminder_id)
        try:
            async with self.sends:
                result = await self.runtime.commands.run(
                    c.ClaimReminder(reminder_id=reminder_id, obligation_id=obligation_id,
                                    instance_id=instance, take_over_from=take_over_from),
                    actor=SYSTEM_ACTOR, now=self.deps.clock())
                won = [ev for ev in result.events
                       if isinstance(ev, ReminderClaimed) and ev.instance_id == instance]
                for event in result.events:
                    if not isinstance(event, ReminderClaimed):   # no contact / abandoned
                        self._count_and_log(event, reminder_id)
                if won:
                    state = result.state(reminder_spec(reminder_id).stream_id)
                    await self._deliver(won[0], state.pending)
        except LookbackError as exc:   # lost a race past the retries, or the database is away
            log.warning("reminder_claim_failed", service="notifier", reminder_id=str(reminder_id),
                        error=exc.code, reason=str(exc)[:300])
        finally:
            self.in_flight.discard(reminder_id)

    async def _resume(self, reminder_id: uuid.UUID) -> None:
        """A claim of ours without every outcome, and no task of ours on it: send what is
        pending (its commit acknowledgement was lost, or recording an outcome failed)."""
        if reminder_id in self.in_flight:
            return
        self.in_flight.add(reminder_id)
        try:
            async with self.sends:
                spec = reminder_spec(reminder_id)
                state, _ = await self.runtime.commands.load(spec)
                if state.claim is not None and state.pending:
                    await self._deliver(state.claim, state.pending)
        except LookbackError as exc:
            log.warning("reminder_resume_failed", service="notifier",
                        reminder_id=str(reminder_id), error=exc.code, reason=str(exc)[:300])
        finally:
            self.in_flight.discard(reminder_id)

    async def _deliver(self, claim: ReminderClaimed, pending: tuple[PlannedDelivery, ...]) -> None:
        deps = self.deps
        message = OutgoingMessage.from_claim(claim, deps.clock())
        for planned in pending:
            sender = deps.senders.get(planned.channel)
            async with self.runtime.pool.acquire() as conn:
                contact = await directory.contact_for(conn, claim.unit, claim.audience)
            if sender is None:
                sent, attempts, reason = False, 1, f"no sender for channel {planned.channel.value}"
            else:
                outcome = await deliver(sender, message, contact, delays=deps.settings.retry_delays)
                sent, attempts, reason = outcome.sent, outcome.attempts, outcome.reason
            result = await self.runtime.commands.run(
                c.RecordDelivery(reminder_id=claim.reminder_id, channel=planned.channel,
                                 sent=sent, recipient_masked=planned.recipient_masked,
                                 message_id=claim.message_id, attempts=attempts, reason=reason,
                                 at=deps.clock()),
                actor=SYSTEM_ACTOR, now=deps.clock())
            for event in result.events:
                self._count_and_log(event, claim.reminder_id, claim)

    def _count_and_log(self, event: ReminderSent | ReminderFailed | Any, reminder_id: uuid.UUID,
                       claim: ReminderClaimed | None = None) -> None:
        if not isinstance(event, (ReminderSent, ReminderFailed)):
            return
        channel: Channel = event.channel
        sent = isinstance(event, ReminderSent)
        self.deliveries.labels(channel.value, "sent" if sent else "failed").inc()
        fields = dict(service="notifier", reminder_id=str(reminder_id), unit=event.unit,
                      channel=channel.value, attempts=event.attempts)
        if claim is not None:
            fields.update(kind=claim.kind.value, audience=claim.audience.value,
                          obligation=claim.obligation_id,
                          scheduled_for=claim.scheduled_for.isoformat())
        if isinstance(event, ReminderSent):
            log.info("reminder_sent", **fields)
        else:
            log.warning("reminder_failed", reason=event.reason, **fields)


async def run_scheduler(runtime: Runtime[NotifierDeps]) -> None:
    await Scheduler(runtime).run()
