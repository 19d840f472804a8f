"""Reminders: claimed once, then one outcome per channel. Pure.

A reminder's stream, `reminder-<reminder_id>`, starts with a ReminderClaimed appended at the
version its claimant read (none): of two instances deciding to send the same reminder, the
store lets exactly one append, and the other, retrying, finds the claim and does nothing. Only
the claimant sends, and it records each channel's outcome after the send.

If the claimant stops between its claim and its outcomes (a crash), its unfinished claim stays.
Another instance takes it over only when the claimant is provably gone (it no longer holds its
liveness lock, checked in the take-over's transaction): a new ReminderClaimed (`attempt` + 1)
at the stream's version, for the channels still without an outcome, with the same text and the
same Message-ID, so a receiving server can drop the copy if the first send did go out. A claim
whose obligation is no longer open by then is closed as failed ("claim abandoned") instead.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.notifier import commands as c
from services.notifier import events as e
from services.notifier.domain.calendar import PlannedReminder, ReminderStatus, find, status_of
from services.notifier.domain.obligations import ObligationState
from services.notifier.events import Channel, PlannedDelivery
from shared.campaign import Campaign
from shared.errors import IllegalTransitionError
from shared.messages import Event, deterministic_id
from shared.pipeline import StreamSpec


class ReminderState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reminder_id: uuid.UUID
    claim: e.ReminderClaimed | None = None
    outcomes: dict[Channel, e.ReminderSent | e.ReminderFailed] = {}

    @property
    def pending(self) -> tuple[PlannedDelivery, ...]:
        """The claimed deliveries without an outcome yet."""
        if self.claim is None:
            return ()
        return tuple(d for d in self.claim.deliveries if d.channel not in self.outcomes)

    @property
    def status(self) -> ReminderStatus | None:
        if self.claim is None:
            return None
        if self.pending:
            return ReminderStatus.CLAIMED
        if any(isinstance(o, e.ReminderFailed) for o in self.outcomes.values()):
            return ReminderStatus.FAILED
        return ReminderStatus.SENT


def reminder_spec(reminder_id: uuid.UUID) -> StreamSpec[ReminderState]:
    return StreamSpec(e.reminder_stream(reminder_id), evolve_reminder,
                      ReminderState(reminder_id=reminder_id))


def evolve_reminder(state: ReminderState, event: Event) -> ReminderState:
    match event:
        case e.ReminderClaimed():
            return state.model_copy(update={"claim": event})
        case e.ReminderSent() | e.ReminderFailed():
            return state.model_copy(update={"outcomes": {**state.outcomes, event.channel: event}})
    raise TypeError(f"not a reminder event: {type(event).__name__}")


def message_id_for(reminder_id: uuid.UUID, domain: str) -> str:
    """The same reminder always goes out under the same Message-ID (RFC 5322), whoever sends it."""
    return f"<reminder-{reminder_id}@{domain}>"


def claim_event_id(event: Event) -> uuid.UUID:
    """Deterministic, and different per claimant: the store takes an existing event id for a
    retry whatever its payload, so two instances must never share the id of a claim."""
    if isinstance(event, e.ReminderClaimed):
        return deterministic_id("notifier", "claim", str(event.reminder_id), str(event.attempt),
                                event.instance_id)
    if isinstance(event, (e.ReminderSent, e.ReminderFailed)):
        return deterministic_id("notifier", "outcome", str(event.reminder_id), event.channel.value)
    raise TypeError(f"not a reminder event: {type(event).__name__}")


@dataclass(frozen=True)
class ClaimInputs:
    """Prepared inside the claim's transaction: where the recipient is reached (masked) and
    whether a previous claimant is gone."""

    deliveries: tuple[PlannedDelivery, ...]
    claimant_gone: bool
    message_domain: str


# (the obligation, the reminder) → (subject, body): the message, rendered from templates.
Render = Callable[[ObligationState, PlannedReminder], tuple[str, str]]


def decide_claim(obligation: ObligationState, reminder: ReminderState, cmd: c.ClaimReminder, *,
                 inputs: ClaimInputs, now: datetime, campaign: Campaign,
                 render: Render) -> list[Event]:
    planned = find(obligation, cmd.reminder_id, campaign)
    if reminder.claim is not None:
        return _take_over(obligation, reminder, cmd, inputs=inputs, now=now)
    if planned is None:
        return []  # not (any more) in the obligation's calendar: a due date moved
    if status_of(planned, obligation, None, now, campaign) is not ReminderStatus.DUE:
        return []
    deliveries = inputs.deliveries or (PlannedDelivery(
        channel=Channel.NONE, recipient_masked=f"{obligation.unit}/{planned.audience.value}"),)
    subject, body = render(obligation, planned)
    claim = _claim(obligation, planned, cmd, deliveries=deliveries, attempt=1,
                   message_id=message_id_for(planned.reminder_id, inputs.message_domain),
                   subject=subject, body=body)
    events: list[Event] = [claim]
    if not inputs.deliveries:
        events.append(e.ReminderFailed(
            reminder_id=claim.reminder_id, unit=claim.unit, channel=Channel.NONE,
            recipient_masked=deliveries[0].recipient_masked, attempts=1, failed_at=now,
            reason=f"no contact for {obligation.unit}/{planned.audience.value} in the directory"))
    return events


def _claim(obligation: ObligationState, planned: PlannedReminder, cmd: c.ClaimReminder, *,
           deliveries: tuple[PlannedDelivery, ...], attempt: int, message_id: str, subject: str,
           body: str) -> e.ReminderClaimed:
    return e.ReminderClaimed(
        reminder_id=planned.reminder_id, obligation_id=obligation.obligation_id,
        unit=obligation.unit, obligation_kind=obligation.kind, kind=planned.kind,
        audience=planned.audience, scheduled_for=planned.at, due_on=planned.due_on,
        attempt=attempt, instance_id=cmd.instance_id, deliveries=deliveries,
        message_id=message_id, subject=subject, body=body)


def _take_over(obligation: ObligationState, reminder: ReminderState, cmd: c.ClaimReminder, *,
               inputs: ClaimInputs, now: datetime) -> list[Event]:
    claim = reminder.claim
    assert claim is not None
    if (not reminder.pending or cmd.take_over_from is None
            or cmd.take_over_from != claim.instance_id or not inputs.claimant_gone
            or cmd.instance_id == claim.instance_id):
        return []  # finished, or its claimant may still be sending it
    if not obligation.is_open:
        return [e.ReminderFailed(
            reminder_id=claim.reminder_id, unit=claim.unit, channel=d.channel,
            recipient_masked=d.recipient_masked, attempts=claim.attempt, failed_at=now,
            reason="claim abandoned: the claimant stopped, and the obligation is no longer open")
            for d in reminder.pending]
    return [claim.model_copy(update={"attempt": claim.attempt + 1,
                                     "instance_id": cmd.instance_id,
                                     "deliveries": reminder.pending})]


def decide_record_delivery(reminder: ReminderState, cmd: c.RecordDelivery) -> list[Event]:
    claim = reminder.claim
    if claim is None:
        raise IllegalTransitionError(f"reminder {cmd.reminder_id} was never claimed")
    if cmd.channel not in {d.channel for d in reminder.pending}:
        return []  # already recorded (a retry), or not a channel of this claim
    if cmd.sent:
        return [e.ReminderSent(reminder_id=cmd.reminder_id, unit=claim.unit, channel=cmd.channel,
                               recipient_masked=cmd.recipient_masked, message_id=cmd.message_id,
                               attempts=cmd.attempts, sent_at=cmd.at)]
    return [e.ReminderFailed(reminder_id=cmd.reminder_id, unit=claim.unit, channel=cmd.channel,
                             recipient_masked=cmd.recipient_masked, reason=cmd.reason,
                             attempts=cmd.attempts, failed_at=cmd.at)]
