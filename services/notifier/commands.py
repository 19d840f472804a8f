"""Notifier commands (frozen, imperative).

The obligation commands are sent by the notifier's own subscribers, one per upstream fact; the
reminder commands by its scheduler; the contact commands by city_admin over HTTP. Addresses are
`SecretStr`, so a command in a log or a traceback shows `**********`.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field, SecretStr

from services.notifier.events import Audience, Channel, ObligationKind, SourceRef
from shared.messages import Command


class OpenObligation(Command):
    obligation_id: str
    unit: str
    kind: ObligationKind
    title: str
    due_on: date
    at: AwareDatetime
    details: dict[str, str] = {}
    source: SourceRef


class MoveDueDate(Command):
    obligation_id: str
    unit: str
    due_on: date
    at: AwareDatetime
    reason: str
    source: SourceRef


class RecordFulfilment(Command):
    """One fact may fulfil several obligations (two deadlines of one kind): one command, one
    atomic append, so the reaction's derived event ids never collide."""

    obligation_ids: tuple[str, ...] = Field(min_length=1)
    unit: str
    part: str
    at: AwareDatetime
    how: str
    source: SourceRef


class RecordReturn(Command):
    """`candidates`: the obligations the returned part may belong to (a review of a monthly list
    names the report, not the month): the one that recorded the part takes the return."""

    candidates: tuple[str, ...] = Field(min_length=1)
    unit: str
    part: str
    at: AwareDatetime
    reason: str
    source: SourceRef


class CancelObligation(Command):
    obligation_id: str
    unit: str
    part: str
    at: AwareDatetime
    reason: str
    source: SourceRef


class ClaimReminder(Command):
    """Take a due reminder to send it. `take_over_from`: the instance whose claim is unfinished
    and which is no longer running (checked in the command's transaction)."""

    reminder_id: uuid.UUID
    obligation_id: str
    instance_id: str
    take_over_from: str | None = None


class RecordDelivery(Command):
    reminder_id: uuid.UUID
    channel: Channel
    sent: bool
    recipient_masked: str
    message_id: str
    attempts: int = Field(ge=1)
    reason: str = ""
    at: datetime


class WebhookFormat(StrEnum):
    JSON = "json"            # our own JSON (reminder id, unit, kind, subject, text)
    WECOM = "wecom"          # 企业微信群机器人 text message
    DINGTALK = "dingtalk"    # 钉钉群机器人 text message


class SetContact(Command):
    unit: str
    audience: Audience
    email: SecretStr | None = None
    webhook_url: SecretStr | None = None
    webhook_format: WebhookFormat = WebhookFormat.JSON


class EraseContact(Command):
    unit: str
    audience: Audience
