"""Sending, behind one port: e-mail over SMTP, a mail folder, a webhook.

Each sender takes the message (fixed at claim time) and the contact (read from the directory at
send time) and either delivers or raises `DeliveryError` with a reason that never quotes an
address or a URL. `deliver` retries with the configured pauses; an SMTP 5xx answer is permanent
and not retried (RFC 5321: the same message would be refused again).

Every e-mail carries `Message-ID: <reminder-<id>@<domain>>`, derived from the reminder's id: the
one duplicate a crash can cause (sent, then the process died before recording it, then taken
over) reaches the receiving server under the same Message-ID, which lets it drop the copy. The
mail folder writes `<reminder id>.eml` by atomic rename, so a repeat overwrites the same file. A
webhook gets the id in an `Idempotency-Key` header (our JSON format honours it; the WeCom and
DingTalk robots do not deduplicate).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import httpx

from services.notifier.commands import WebhookFormat
from services.notifier.directory import Contact
from services.notifier.domain.contacts import mask_email, mask_url
from services.notifier.events import Audience, Channel, ObligationKind, ReminderClaimed, ReminderKind
from services.notifier.settings import NotifierSettings

_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+")
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")


def scrub(text: str, limit: int = 300) -> str:
    """A reason fit for an event and a log line: addresses and URLs masked, one line, bounded."""
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
    return " ".join(text.split())[:limit]


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = scrub(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class OutgoingMessage:
    reminder_id: uuid.UUID
    message_id: str
    unit: str
    audience: Audience
    kind: ReminderKind
    obligation_kind: ObligationKind
    scheduled_for: datetime
    subject: str
    body: str
    date: datetime

    @classmethod
    def from_claim(cls, claim: ReminderClaimed, now: datetime) -> OutgoingMessage:
        return cls(reminder_id=claim.reminder_id, message_id=claim.message_id, unit=claim.unit,
                   audience=claim.audience, kind=claim.kind, obligation_kind=claim.obligation_kind,
                   scheduled_for=claim.scheduled_for, subject=claim.subject, body=claim.body,
                   date=now)


class Sender(Protocol):
    channel: Channel

    async def send(self, message: OutgoingMessage, contact: Contact) -> None:
        """Deliver once, or raise DeliveryError."""


def build_email(message: OutgoingMessage, address: str, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = address
    email["Subject"] = message.subject
    email["Message-ID"] = message.message_id
    email["Date"] = format_datetime(message.date)
    email["X-Lookback-Reminder-Id"] = str(message.reminder_id)
    email["X-Lookback-Kind"] = message.kind.value
    email["X-Lookback-Obligation-Kind"] = message.obligation_kind.value
    email["X-Lookback-Unit"] = message.unit
    email["X-Lookback-Audience"] = message.audience.value
    email["X-Lookback-Scheduled-For"] = message.scheduled_for.isoformat()
    email.set_content(message.body)
    return email


def _address(contact: Contact) -> str:
    if not contact.email:
        raise DeliveryError("the contact has no e-mail address any more", permanent=True)
    return contact.email


class SmtpSender:
    channel = Channel.EMAIL

    def __init__(self, settings: NotifierSettings) -> None:
        if settings.smtp_host is None:
            raise ValueError("SmtpSender needs LOOKBACK_NOTIFIER_SMTP_HOST")
        self.settings = settings

    async def send(self, message: OutgoingMessage, contact: Contact) -> None:
        s = self.settings
        email = build_email(message, _address(contact), s.sender)
        try:
            await aiosmtplib.send(
                email, hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout,
                use_tls=s.smtp_tls == "tls", start_tls=s.smtp_tls == "starttls",
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            raise DeliveryError(f"recipient refused (SMTP {', '.join(map(str, codes))})",
                                permanent=all(code >= 500 for code in codes)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}",
                                permanent=exc.code >= 500) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


class MailFolderSender:
    """One `.eml` file per message, for a newcomer to open (the embedded default)."""

    channel = Channel.MAIL_FOLDER

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder, self.sender = folder, sender

    def path_for(self, message: OutgoingMessage) -> Path:
        stamp = message.scheduled_for.strftime("%Y%m%d-%H%M")
        return self.folder / f"{stamp}-{message.unit}-{message.kind.value}-{message.reminder_id}.eml"

    async def send(self, message: OutgoingMessage, contact: Contact) -> None:
        email = build_email(message, _address(contact), self.sender)
        try:
            await asyncio.to_thread(self._write, self.path_for(message), email.as_bytes())
        except OSError as exc:
            raise DeliveryError(f"{type(exc).__name__} writing the mail folder") from exc

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, path)   # atomic: a reader never sees half a message


def webhook_payload(message: OutgoingMessage, fmt: WebhookFormat) -> dict[str, Any]:
    text = f"{message.subject}\n\n{message.body}"
    if fmt in (WebhookFormat.WECOM, WebhookFormat.DINGTALK):
        return {"msgtype": "text", "text": {"content": text}}
    return {"reminder_id": str(message.reminder_id), "message_id": message.message_id,
            "unit": message.unit, "audience": message.audience.value,
            "kind": message.kind.value, "obligation_kind": message.obligation_kind.value,
            "scheduled_for": message.scheduled_for.isoformat(), "subject": message.subject,
            "text": message.body}


class WebhookSender:
    channel = Channel.WEBHOOK

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def send(self, message: OutgoingMessage, contact: Contact) -> None:
        if not contact.webhook_url:
            raise DeliveryError("the contact has no webhook any more", permanent=True)
        fmt = contact.webhook_format
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    contact.webhook_url, json=webhook_payload(message, fmt),
                    headers={"Idempotency-Key": str(message.reminder_id)})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__} posting to the webhook") from exc
        if response.status_code >= 400:
            raise DeliveryError(f"webhook answered HTTP {response.status_code}",
                                permanent=400 <= response.status_code < 500
                                and response.status_code != 429)
        if fmt in (WebhookFormat.WECOM, WebhookFormat.DINGTALK):
            # Both robots answer 200 with {"errcode": n, "errmsg": "..."}; 0 is success.
            try:
                answer = response.json()
            except json.JSONDecodeError:
                raise DeliveryError("webhook answer is not JSON") from None
            if answer.get("errcode") != 0:
                raise DeliveryError(f"robot errcode {answer.get('errcode')}")


@dataclass(frozen=True)
class DeliveryResult:
    sent: bool
    attempts: int
    reason: str = ""


async def deliver(sender: Sender, message: OutgoingMessage, contact: Contact | None, *,
                  delays: Sequence[float]) -> DeliveryResult:
    """Send with retries: `len(delays) + 1` attempts at most, the given pauses between them."""
    if contact is None:
        return DeliveryResult(False, 1, "the contact was erased before the send")
    attempt, reason = 0, ""
    for attempt in range(1, len(delays) + 2):
        try:
            await sender.send(message, contact)
            return DeliveryResult(True, attempt)
        except DeliveryError as exc:
            reason = exc.reason
            if exc.permanent:
                break
        if attempt <= len(delays):
            await asyncio.sleep(delays[attempt - 1])
    return DeliveryResult(False, attempt, reason)
