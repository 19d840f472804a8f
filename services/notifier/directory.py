"""The contact directory: where each unit's liaison and leader are reached. Outside the event log.

Events carry no addresses (officials' e-mail addresses are personal data, a webhook URL holds a
robot's secret key), so the notifier keeps its own table, `notifier.contacts`, one row per (unit,
audience), which can be corrected or erased without touching the log. It is filled from:

- the contacts file (`LOOKBACK_NOTIFIER_CONTACTS_FILE`), applied at every start: the file wins
  for the pairs it lists;
- city_admin, through `PUT /contacts/{unit}/{audience}` (a SetContact command records the change,
  masked);
- in the demo and tests, obviously fake addresses (`liaison.echeng@example.invalid`) for pairs
  nobody gave (`LOOKBACK_NOTIFIER_EXAMPLE_CONTACTS`, on by default; reserved `.invalid` addresses
  can never reach anyone).

Nothing here logs an address; `Contact`'s repr is masked, so a traceback cannot leak one either.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError

from services.notifier.commands import WebhookFormat
from services.notifier.domain.contacts import email_problem, mask_email, mask_url, url_problem
from services.notifier.events import Audience, Channel, PlannedDelivery
from shared.campaign import Campaign
from shared.errors import LookbackError


@dataclass(frozen=True)
class Contact:
    unit: str
    audience: Audience
    email: str | None
    webhook_url: str | None
    webhook_format: WebhookFormat = WebhookFormat.JSON

    def __repr__(self) -> str:
        return (f"Contact({self.unit}/{self.audience.value}, "
                f"email={mask_email(self.email) if self.email else None}, "
                f"webhook={mask_url(self.webhook_url) if self.webhook_url else None})")

    __str__ = __repr__


class ContactsFileError(LookbackError):
    """The contacts file is unreadable or invalid; `problems` are (field path, reason) pairs,
    which never quote an address."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {field or '(file)'}: {reason}" for field, reason in problems)
        super().__init__(f"invalid contacts file {source}:\n{lines}")


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    audience: Audience
    email: str | None = None
    webhook_url: str | None = None
    webhook_format: WebhookFormat = WebhookFormat.JSON


def read_contacts_file(path: Path, campaign: Campaign) -> tuple[Contact, ...]:
    """`[[contacts]]` entries: unit, audience (liaison | leader), email and/or webhook_url,
    webhook_format (json | wecom | dingtalk). Every problem is reported at once."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContactsFileError(str(path), [("", "file not found")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ContactsFileError(str(path), [("", f"not valid TOML: {type(exc).__name__}")]) from None
    problems: list[tuple[str, str]] = []
    contacts: list[Contact] = []
    seen: set[tuple[str, Audience]] = set()
    for i, raw in enumerate(data.get("contacts", [])):
        where = f"contacts[{i}]"
        try:
            entry = _Entry.model_validate(raw)
        except ValidationError as exc:
            problems += [(f"{where}.{'.'.join(str(p) for p in err['loc'])}", err["msg"])
                         for err in exc.errors(include_input=False, include_url=False)]
            continue
        if not campaign.has_unit(entry.unit):
            problems.append((f"{where}.unit", "not a reporting unit of the campaign"))
        if entry.email is None and entry.webhook_url is None:
            problems.append((where, "give an email, a webhook_url, or both"))
        if entry.email is not None and (reason := email_problem(entry.email)):
            problems.append((f"{where}.email", reason))
        if entry.webhook_url is not None and (reason := url_problem(entry.webhook_url)):
            problems.append((f"{where}.webhook_url", reason))
        if (entry.unit, entry.audience) in seen:
            problems.append((where, f"{entry.unit}/{entry.audience.value} is listed twice"))
        seen.add((entry.unit, entry.audience))
        contacts.append(Contact(entry.unit, entry.audience, entry.email, entry.webhook_url,
                                entry.webhook_format))
    unknown = set(data) - {"contacts"}
    problems += [(key, "unknown section (a typo?)") for key in sorted(unknown)]
    if problems:
        raise ContactsFileError(str(path), problems)
    return tuple(contacts)


def example_contacts(campaign: Campaign) -> tuple[Contact, ...]:
    return tuple(Contact(unit, audience, f"{audience.value}.{unit}@example.invalid", None)
                 for unit in campaign.unit_codes for audience in Audience)


def _contact(row: Any) -> Contact:
    return Contact(row["unit"], Audience(row["audience"]), row["email"], row["webhook_url"],
                   WebhookFormat(row["webhook_format"]))


async def contact_for(conn: Any, unit: str, audience: Audience) -> Contact | None:
    row = await conn.fetchrow(
        "SELECT * FROM notifier.contacts WHERE unit = $1 AND audience = $2", unit, audience.value)
    return _contact(row) if row else None


async def put_contact(conn: Any, contact: Contact, *, source: str, replace: bool = True) -> bool:
    """Insert or (with `replace`) overwrite the row; True if a row was written."""
    conflict = ("DO UPDATE SET email = EXCLUDED.email, webhook_url = EXCLUDED.webhook_url, "
                "webhook_format = EXCLUDED.webhook_format, source = EXCLUDED.source, "
                "updated_at = now()") if replace else "DO NOTHING"
    written = await conn.fetchval(
        f"""INSERT INTO notifier.contacts (unit, audience, email, webhook_url, webhook_format,
                   source, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, now())
            ON CONFLICT (unit, audience) {conflict} RETURNING true""",
        contact.unit, contact.audience.value, contact.email, contact.webhook_url,
        contact.webhook_format.value, source)
    return bool(written)


async def erase_contact(conn: Any, unit: str, audience: Audience) -> bool:
    erased = await conn.fetchval(
        "DELETE FROM notifier.contacts WHERE unit = $1 AND audience = $2 RETURNING true",
        unit, audience.value)
    return bool(erased)


async def all_contacts(conn: Any, unit: str | None) -> list[tuple[Contact, str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM notifier.contacts WHERE $1::text IS NULL OR unit = $1 "
        "ORDER BY unit, audience", unit)
    return [(_contact(row), row["source"], row["updated_at"]) for row in rows]


async def load_directory(pool: asyncpg.Pool, *, from_file: tuple[Contact, ...],
                         examples: tuple[Contact, ...]) -> tuple[int, int]:
    """Apply the file (it wins), then fill gaps with examples; (from file, examples) written."""
    async with pool.acquire() as conn, conn.transaction():
        filed = sum([await put_contact(conn, c, source="file") for c in from_file])
        filled = sum([await put_contact(conn, c, source="example", replace=False)
                      for c in examples])
    return filed, filled


def deliveries_for(contact: Contact | None, email_channel: Channel) -> tuple[PlannedDelivery, ...]:
    """The channels a contact can be reached on, each with its masked recipient."""
    if contact is None:
        return ()
    planned = []
    if contact.email:
        planned.append(PlannedDelivery(channel=email_channel,
                                       recipient_masked=mask_email(contact.email)))
    if contact.webhook_url:
        planned.append(PlannedDelivery(channel=Channel.WEBHOOK,
                                       recipient_masked=mask_url(contact.webhook_url)))
    return tuple(planned)
