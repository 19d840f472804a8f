"""The notifier's command table: for each command, the streams it decides on and the pure decision.

The kernel's pipeline (shared/pipeline.py) runs every row alike: authorize, prepare, load, decide,
append at the versions read, retry a conflict, envelope, log, count. Three rows prepare inputs
inside the command's transaction:

- a claim reads where the recipient is reached (masked) and, for a take-over, whether the
  previous claimant still holds its liveness lock;
- setting or erasing a contact writes the contact directory (outside the event log, so it can be
  erased) in the same transaction as its masked ContactSet / ContactErased, as the registry
  creates personal-data keys in its `prepare`: a refused command leaves no row behind.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.notifier import commands as c
from services.notifier import directory
from services.notifier import events as e
from services.notifier.channels import Sender
from services.notifier.domain import obligations as ob
from services.notifier.domain import reminders as rm
from services.notifier.domain.calendar import find
from services.notifier.domain.contacts import check_contact, mask_email, mask_url
from services.notifier.events import Channel
from services.notifier.liveness import Liveness
from services.notifier.settings import NotifierSettings
from services.notifier.texts import Texts
from shared.campaign import Campaign
from shared.clock import Clock
from shared.errors import ValidationFailed
from shared.messages import Event, Role
from shared.pipeline import CommandTable, Decision, Handler, Preparation, StreamSpec


@dataclass(frozen=True)
class NotifierDeps:
    """What the notifier's handlers, projections, routes and scheduler share (one per process)."""

    campaign: Campaign
    texts: Texts
    settings: NotifierSettings
    clock: Clock
    email_channel: Channel             # EMAIL with an SMTP server configured, else MAIL_FOLDER
    message_domain: str                # the right-hand side of every Message-ID
    senders: Mapping[Channel, Sender] = field(default_factory=dict)
    contacts_from_file: tuple[directory.Contact, ...] = ()
    liveness: Liveness = field(default_factory=Liveness)


NotifierDecision = Decision[Any, Any, NotifierDeps]
# No route sends the obligation and reminder commands: the notifier's own subscribers and
# scheduler do, as the system actor (whose role is city_admin).
ONLY_THE_SYSTEM = frozenset({Role.CITY_ADMIN})


# ----- which streams ----------------------------------------------------------------------------


def the_obligation(cmd: Any, deps: NotifierDeps) -> list[StreamSpec[Any]]:
    return [ob.obligation_spec(cmd.obligation_id, deps.campaign)]


def the_candidates(cmd: c.RecordReturn, deps: NotifierDeps) -> list[StreamSpec[Any]]:
    return [ob.obligation_spec(oid, deps.campaign) for oid in dict.fromkeys(cmd.candidates)]


def the_obligations(cmd: c.RecordFulfilment, deps: NotifierDeps) -> list[StreamSpec[Any]]:
    return [ob.obligation_spec(oid, deps.campaign) for oid in dict.fromkeys(cmd.obligation_ids)]


def claim_streams(cmd: c.ClaimReminder, deps: NotifierDeps) -> list[StreamSpec[Any]]:
    return [ob.obligation_spec(cmd.obligation_id, deps.campaign), rm.reminder_spec(cmd.reminder_id)]


def the_reminder(cmd: c.RecordDelivery, _: NotifierDeps) -> list[StreamSpec[Any]]:
    return [rm.reminder_spec(cmd.reminder_id)]


def _count(state: int, _: Event) -> int:
    return state + 1


def the_unit_contacts(cmd: c.SetContact | c.EraseContact, _: NotifierDeps
                      ) -> list[StreamSpec[Any]]:
    return [StreamSpec(e.contacts_stream(cmd.unit), _count, 0)]


def to_obligation(event: Event) -> str:
    assert isinstance(event, e.OBLIGATION_EVENTS)
    return e.notice_stream(event.obligation_id)  # type: ignore[attr-defined]


def to_reminder(event: Event) -> str:
    assert isinstance(event, e.REMINDER_EVENTS)
    return e.reminder_stream(event.reminder_id)  # type: ignore[attr-defined]


# ----- decisions --------------------------------------------------------------------------------


def obligation_rule(decide: Callable[..., list[Event]]) -> Callable[[NotifierDecision], list[Event]]:
    return lambda x: decide(x.only_state, x.command, campaign=x.deps.campaign)


def _by_obligation(x: NotifierDecision) -> dict[str, ob.ObligationState]:
    return {stream_id.removeprefix("notice-"): state for stream_id, state in x.states.items()}


def decide_return(x: NotifierDecision) -> list[Event]:
    return ob.decide_return(_by_obligation(x), x.command, campaign=x.deps.campaign)


def decide_fulfil(x: NotifierDecision) -> list[Event]:
    return ob.decide_fulfil(_by_obligation(x), x.command, campaign=x.deps.campaign)


def decide_claim(x: NotifierDecision) -> list[Event]:
    cmd: c.ClaimReminder = x.command
    return rm.decide_claim(x.state(e.notice_stream(cmd.obligation_id)),
                           x.state(e.reminder_stream(cmd.reminder_id)), cmd, inputs=x.inputs,
                           now=x.now, campaign=x.deps.campaign, render=x.deps.texts.render)


def decide_delivery(x: NotifierDecision) -> list[Event]:
    return rm.decide_record_delivery(x.only_state, x.command)


def decide_set_contact(x: Decision[c.SetContact, tuple[str | None, str | None], NotifierDeps]
                       ) -> list[Event]:
    email_masked, webhook_masked = x.inputs
    cmd = x.command
    return [e.ContactSet(unit=cmd.unit, audience=cmd.audience, email_masked=email_masked,
                         webhook_masked=webhook_masked,
                         webhook_format=cmd.webhook_format.value if webhook_masked else None,
                         set_by=x.actor.id)]


def decide_erase_contact(x: Decision[c.EraseContact, bool, NotifierDeps]) -> list[Event]:
    if not x.inputs:
        return []   # nothing was there: nothing to record
    return [e.ContactErased(unit=x.command.unit, audience=x.command.audience,
                            erased_by=x.actor.id)]


# ----- preparations (inside the command's transaction) -------------------------------------------


async def prepare_claim(p: Preparation[c.ClaimReminder, NotifierDeps]) -> rm.ClaimInputs:
    cmd, deps = p.command, p.deps
    obligation: ob.ObligationState = p.states[e.notice_stream(cmd.obligation_id)]
    reminder: rm.ReminderState = p.states[e.reminder_stream(cmd.reminder_id)]
    gone = False
    if cmd.take_over_from is not None and reminder.claim is not None:
        gone = await Liveness.is_gone(p.conn, cmd.take_over_from)
    planned = find(obligation, cmd.reminder_id, deps.campaign)
    deliveries: tuple[e.PlannedDelivery, ...] = ()
    if planned is not None and reminder.claim is None:
        contact = await directory.contact_for(p.conn, obligation.unit, planned.audience)
        deliveries = directory.deliveries_for(contact, deps.email_channel)
    return rm.ClaimInputs(deliveries=deliveries, claimant_gone=gone,
                          message_domain=deps.message_domain)


def _unit_known(unit: str, deps: NotifierDeps) -> None:
    if not deps.campaign.has_unit(unit):
        raise ValidationFailed([("unit", f"not a reporting unit of campaign {deps.campaign.id}")])


async def prepare_set_contact(p: Preparation[c.SetContact, NotifierDeps]
                              ) -> tuple[str | None, str | None]:
    cmd = p.command
    _unit_known(cmd.unit, p.deps)
    email = cmd.email.get_secret_value().strip() if cmd.email is not None else None
    webhook = cmd.webhook_url.get_secret_value().strip() if cmd.webhook_url is not None else None
    check_contact(email or None, webhook or None)
    await directory.put_contact(p.conn, directory.Contact(
        unit=cmd.unit, audience=cmd.audience, email=email or None, webhook_url=webhook or None,
        webhook_format=cmd.webhook_format), source="api")
    return (mask_email(email) if email else None, mask_url(webhook) if webhook else None)


async def prepare_erase_contact(p: Preparation[c.EraseContact, NotifierDeps]) -> bool:
    _unit_known(p.command.unit, p.deps)
    return await directory.erase_contact(p.conn, p.command.unit, p.command.audience)


# ----- the table ----------------------------------------------------------------------------------

COMMANDS: CommandTable = {
    c.OpenObligation: Handler(streams=the_obligation, decide=obligation_rule(ob.decide_open),
                              roles=ONLY_THE_SYSTEM),
    c.MoveDueDate: Handler(streams=the_obligation, decide=obligation_rule(ob.decide_move_due),
                           roles=ONLY_THE_SYSTEM),
    c.RecordFulfilment: Handler(streams=the_obligations, decide=decide_fulfil,
                                route=to_obligation, roles=ONLY_THE_SYSTEM),
    c.CancelObligation: Handler(streams=the_obligation, decide=obligation_rule(ob.decide_cancel),
                                roles=ONLY_THE_SYSTEM),
    c.RecordReturn: Handler(streams=the_candidates, decide=decide_return, route=to_obligation,
                            roles=ONLY_THE_SYSTEM),
    c.ClaimReminder: Handler(streams=claim_streams, prepare=prepare_claim, decide=decide_claim,
                             route=to_reminder, roles=ONLY_THE_SYSTEM,
                             event_id=rm.claim_event_id),
    c.RecordDelivery: Handler(streams=the_reminder, decide=decide_delivery,
                              roles=ONLY_THE_SYSTEM, event_id=rm.claim_event_id),
    c.SetContact: Handler(streams=the_unit_contacts, prepare=prepare_set_contact,
                          decide=decide_set_contact, roles=frozenset({Role.CITY_ADMIN})),
    c.EraseContact: Handler(streams=the_unit_contacts, prepare=prepare_erase_contact,
                            decide=decide_erase_contact, roles=frozenset({Role.CITY_ADMIN})),
}
