"""The notifier's answers as the API document describes them (response models of api.py). Each
declares what a client may rely on; the rest passes through, and FastAPI checks every answer
against its model."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.api_contract import Answer, Page


class PlannedReminder(Answer):
    reminder_id: str
    at: str
    kind: str
    audience: str
    status: str
    why: str


class Obligation(Answer):
    """Something a unit owes by a date (a report, the liaisons), and its reminders."""

    obligation_id: str
    unit: str
    unit_name: str
    kind: str
    title: str
    due_on: str | None
    due_at: str | None
    status: str
    missing: list[Any]
    reminded: bool
    not_reminded_why: str | None
    reminders: list[PlannedReminder]


class Calendar(Answer):
    now: str
    timezone: str
    unit: str | None
    reminder_counts: dict[str, int]
    obligations: list[Obligation]


class SentReminder(Answer):
    """A reminder as it was sent: to whom (masked), by which channel, with what result."""

    reminder_id: str


class SentReminderPage(Page):
    items: list[SentReminder]


class Contact(Answer):
    unit: str
    audience: str = Field(description="liaison | leader")
    email: str | None = Field(description="masked")
    webhook: str | None = Field(description="masked")
    webhook_format: str | None
    source: str
    updated_at: str | None


class ContactList(Answer):
    items: list[Contact]


class ContactSet(Answer):
    unit: str
    audience: str
    email: str | None
    webhook: str | None


class ClockReading(Answer):
    now: str
    simulated: bool
