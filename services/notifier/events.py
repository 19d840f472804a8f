"""The notifier's public contract: what it learned about each unit's obligations, and every
reminder it claimed, sent or failed to send.

Streams (categories owned by the notifier's database role):
- `notice-<obligation_id>`: one per obligation (a campaign deadline of a unit, a problem item's
  整改限期, a scheduled inspection visit): ObligationOpened, DueDateMoved, ObligationFulfilled,
  ObligationReturned, ObligationCancelled. Each names the upstream event it came from (`source`),
  so the calendar's every "why" can be traced to another service's fact.
- `notice-contacts.<unit>`: ContactSet, ContactErased (masked addresses only: the addresses
  themselves live in the erasable contact directory, never in the log).
- `reminder-<reminder_id>`: ReminderClaimed, then one ReminderSent or ReminderFailed per channel.

Obligation ids: `deadline:<unit>:<deadline code>` for a campaign deadline, `problem:<problem id>`
for an item's 整改限期, `visit:<visit id>` for an inspection visit. A reminder's id is derived from
(obligation, kind, scheduled local time), so every instance computes the same one.

No e-mail address, webhook URL or phone appears in any event: recipients are a unit and a role
(`audience`) with a masked address (`li***@example.invalid`).
"""
from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.messages import Event, EventContract


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObligationKind(StrEnum):
    """What is due. The first six are the campaign file's deadline kinds, per unit."""

    LIAISONS = "liaisons"
    WORK_PLAN = "work_plan"
    MONTHLY_PROBLEM_LIST = "monthly_problem_list"
    RECTIFICATION_COMPLETE = "rectification_complete"
    SELF_INSPECTION_REPORT = "self_inspection_report"
    TYPICAL_CASE = "typical_case"
    PROBLEM = "problem"      # one problem item's 整改限期
    VISIT = "visit"          # a scheduled city inspection visit (a notice, not a duty)


class ReminderKind(StrEnum):
    REMINDER = "reminder"        # 提醒: T-n working days before the due date, to the liaison
    URGING = "urging"            # 催办: on overdue working days, to the liaison
    ESCALATION = "escalation"    # 督办: once, after N overdue working days, to the leader


class Audience(StrEnum):
    """Who at the unit receives it (the registry's 附件1 roles)."""

    LIAISON = "liaison"      # 联络员
    LEADER = "leader"        # 责任领导


class Channel(StrEnum):
    EMAIL = "email"              # SMTP
    MAIL_FOLDER = "mail_folder"  # one .eml file per message (the embedded default)
    WEBHOOK = "webhook"          # JSON POST (plain, WeCom or DingTalk group robot)
    NONE = "none"                # no contact to send to: recorded as failed


class SourceRef(_Record):
    """The upstream event a notice came from: its type, id and place in its stream."""

    event_type: str
    event_id: uuid.UUID
    stream_id: str
    stream_version: int


# ----- obligations (`notice-<obligation_id>`) -------------------------------------------------


class ObligationOpened(Event):
    """An obligation the campaign file does not list appeared: a problem item was registered (its
    整改限期), an inspection visit was scheduled. Campaign deadlines need no opening: the campaign
    file lists them for every unit."""

    type_name: ClassVar[str] = "notifier.ObligationOpened"

    obligation_id: str
    unit: str
    kind: ObligationKind
    title: str
    due_on: date
    opened_at: AwareDatetime
    details: dict[str, str] = {}
    source: SourceRef


class DueDateMoved(Event):
    """The due date changed (an extension decided): reminders follow the new date."""

    type_name: ClassVar[str] = "notifier.DueDateMoved"

    obligation_id: str
    unit: str
    due_on: date
    moved_at: AwareDatetime
    reason: str
    source: SourceRef


class ObligationFulfilled(Event):
    """A part of the obligation was done (a report submitted, a liaison registered, a close-out
    requested or verified, a visit recorded). `part` names which: a report id, a 附件1 role, or
    `item` / `visit`. When enough parts are done, pending reminders are cancelled."""

    type_name: ClassVar[str] = "notifier.ObligationFulfilled"

    obligation_id: str
    unit: str
    part: str
    fulfilled_at: AwareDatetime
    how: str
    source: SourceRef


class ObligationReturned(Event):
    """退回 or 反弹: a part counted as done is not any more; reminders are re-armed from now."""

    type_name: ClassVar[str] = "notifier.ObligationReturned"

    obligation_id: str
    unit: str
    part: str
    returned_at: AwareDatetime
    reason: str
    source: SourceRef


class ObligationCancelled(Event):
    """Nothing is due any more (an item withdrawn as registered in error)."""

    type_name: ClassVar[str] = "notifier.ObligationCancelled"

    obligation_id: str
    unit: str
    part: str
    cancelled_at: AwareDatetime
    reason: str
    source: SourceRef


# ----- the contact directory (`notice-contacts.<unit>`) ---------------------------------------


class ContactSet(Event):
    """city_admin set where a unit's liaison or leader is reached. Masked: the address itself is
    in the erasable directory, not here."""

    type_name: ClassVar[str] = "notifier.ContactSet"

    unit: str
    audience: Audience
    email_masked: str | None
    webhook_masked: str | None
    webhook_format: str | None
    set_by: str


class ContactErased(Event):
    """The contact was erased from the directory (the log keeps only this fact)."""

    type_name: ClassVar[str] = "notifier.ContactErased"

    unit: str
    audience: Audience
    erased_by: str


# ----- reminders (`reminder-<reminder_id>`) ---------------------------------------------------


class PlannedDelivery(_Record):
    channel: Channel
    recipient_masked: str


class ReminderClaimed(Event):
    """An instance took the reminder to send it, at the stream version it read (two instances
    cannot both claim it). The text is fixed here, so a take-over after a crash sends exactly
    the same message under the same Message-ID. `attempt` > 1: an earlier claimant stopped
    before recording every delivery."""

    type_name: ClassVar[str] = "notifier.ReminderClaimed"

    reminder_id: uuid.UUID
    obligation_id: str
    unit: str
    obligation_kind: ObligationKind
    kind: ReminderKind
    audience: Audience
    scheduled_for: AwareDatetime
    due_on: date
    attempt: int
    instance_id: str
    deliveries: tuple[PlannedDelivery, ...]
    message_id: str
    subject: str
    body: str


class ReminderSent(Event):
    type_name: ClassVar[str] = "notifier.ReminderSent"

    reminder_id: uuid.UUID
    unit: str
    channel: Channel
    recipient_masked: str
    message_id: str
    attempts: int
    sent_at: AwareDatetime


class ReminderFailed(Event):
    """Every retry failed (or there was no contact, or the claimant stopped and the obligation is
    no longer due). `reason` never quotes an address."""

    type_name: ClassVar[str] = "notifier.ReminderFailed"

    reminder_id: uuid.UUID
    unit: str
    channel: Channel
    recipient_masked: str
    reason: str
    attempts: int
    failed_at: AwareDatetime


OBLIGATION_EVENTS: tuple[type[Event], ...] = (
    ObligationOpened, DueDateMoved, ObligationFulfilled, ObligationReturned, ObligationCancelled)
CONTACT_EVENTS: tuple[type[Event], ...] = (ContactSet, ContactErased)
REMINDER_EVENTS: tuple[type[Event], ...] = (ReminderClaimed, ReminderSent, ReminderFailed)
ALL_EVENTS: tuple[type[Event], ...] = (*OBLIGATION_EVENTS, *CONTACT_EVENTS, *REMINDER_EVENTS)

# The notifier's published contract: its name, the stream categories only it writes, its events.
CONTRACT = EventContract(service="notifier", categories=("notice", "reminder"), events=ALL_EVENTS)


def notice_stream(obligation_id: str) -> str:
    return f"notice-{obligation_id}"


def contacts_stream(unit: str) -> str:
    return f"notice-contacts.{unit}"


def reminder_stream(reminder_id: uuid.UUID | str) -> str:
    return f"reminder-{reminder_id}"
