"""The notifier running for real: a local SMTP server and a local webhook server started by the
test, other services' events appended as those services append them (their own database roles
and categories), and waits for the notifier to have taken everything in (actors, tokens and
running a service: tests/support)."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller

from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from services.notifier.subscribers import CONSUMERS
from shared.campaign import load_campaign
from shared.clock import SimulatedClock
from shared.messages import Event, new_event
from shared.store import PostgresEventStore
from tests.support.actors import auth, city_admin
from tests.support.databases import pool_as
from tests.support.polling import eventually
from tests.support.services import running, service_settings

CAMPAIGN = load_campaign()
TZ = CAMPAIGN.tz
CAMPAIGN_START = datetime(2024, 3, 4, 0, 0, tzinfo=TZ)

WANTED = frozenset(t for spec in CONSUMERS for t in spec.event_types)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=TZ)


# ----- a local SMTP server ------------------------------------------------------------------------


@dataclass
class Received:
    envelope_to: tuple[str, ...]
    message: EmailMessage

    @property
    def sent_at(self) -> datetime:
        return parsedate_to_datetime(self.message["Date"]).astimezone(TZ)

    @property
    def summary(self) -> tuple[str, str, str, str, str]:
        """(date, time, recipient, reminder kind, obligation kind), as the expected lists say."""
        moment = self.sent_at
        return (moment.strftime("%m-%d"), moment.strftime("%H:%M"), self.message["To"],
                self.message["X-Lookback-Kind"], self.message["X-Lookback-Obligation-Kind"])


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = self.sink.answer(envelope.rcpt_tos[0])
        if answer.startswith("250"):
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.sink.received.append(Received(tuple(envelope.rcpt_tos), message))
        return answer


@dataclass
class SmtpSink:
    """aiosmtpd on 127.0.0.1. `answers[recipient]`, if any, are given to that recipient's
    messages first (e.g. "451 ..." to make a send fail), then 250."""

    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    port: int = 0

    def answer(self, recipient: str) -> str:
        self.attempts[recipient] = self.attempts.get(recipient, 0) + 1
        queued = self.answers.get(recipient)
        return queued.pop(0) if queued else "250 OK"

    def summaries(self) -> list[tuple[str, str, str, str, str]]:
        return sorted(r.summary for r in self.received)


@asynccontextmanager
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port)
    await asyncio.to_thread(controller.start)
    try:
        yield sink
    finally:
        await asyncio.to_thread(controller.stop)


# ----- a local webhook server ----------------------------------------------------------------------


@dataclass
class WebhookSink:
    """A group robot on 127.0.0.1: answers errcode 0, except to the key `refused-key`."""

    posts: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    port: int = 0

    def url(self, key: str = "secret-robot-key") -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/webhook/send?key={key}"


@asynccontextmanager
async def webhook_sink() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("Content-Length", "0"))
            sink.posts.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
            refused = "key=refused-key" in self.path
            body = json.dumps({"errcode": 300001 if refused else 0,
                               "errmsg": "token is invalid" if refused else "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


# ----- the notifier -------------------------------------------------------------------------------


def notifier_settings(smtp: SmtpSink | None, **extra: Any) -> NotifierSettings:
    values: dict[str, Any] = dict(retry_delays=(0.05, 0.1), example_contacts=True,
                                  takeover_check_seconds=0.5)
    if smtp is not None:
        values.update(smtp_host="127.0.0.1", smtp_port=smtp.port)
    values.update(extra)
    return NotifierSettings(**values)


@asynccontextmanager
async def notifier(dsn: str, data_dir: Path, clock: SimulatedClock, ns: NotifierSettings,
                   **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service_settings(dsn, data_dir, **settings), notifier_settings=ns,
                     clock=clock)
    async with running(app) as client:
        yield client


# ----- other services' events, as they append them -----------------------------------------------


class Upstream:
    """Appends registry / rectification / inspection events with those services' own roles."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.stores: dict[str, PostgresEventStore] = {}
        self.appended: list[uuid.UUID] = []   # ids of events the notifier consumes
        self._pools = AsyncExitStack()

    async def close(self) -> None:
        await self._pools.aclose()

    async def append(self, stream_id: str, event: Event, *, occurred_at: datetime) -> None:
        service = event.type_name.split(".")[0]
        if service not in self.stores:
            pool = await self._pools.enter_async_context(pool_as(self.dsn, service))
            self.stores[service] = PostgresEventStore(pool)
        new = new_event(stream_id, event, actor=city_admin(), occurred_at=occurred_at)
        await self.stores[service].append([new])
        if event.type_name in WANTED:
            self.appended.append(new.event_id)


async def wait_settled(dsn: str, event_ids: list[uuid.UUID], *, what: str = "") -> None:
    """Every given event handled by the notifier's consumers, and its read models caught up
    with every notice and reminder stream."""
    conn = await asyncpg.connect(dsn)
    try:
        async def check() -> bool:
            unhandled = await conn.fetchval(
                "SELECT count(*) FROM unnest($1::uuid[]) AS wanted(id) WHERE NOT EXISTS ("
                "SELECT 1 FROM es.inbox i WHERE i.event_id = wanted.id "
                "AND i.consumer LIKE 'notifier.on-%')", event_ids)
            behind = await conn.fetchval(
                """SELECT count(*) FROM es.streams s
                    WHERE (s.stream_id LIKE 'notice-%' AND s.stream_id NOT LIKE 'notice-contacts.%'
                           AND NOT EXISTS (SELECT 1 FROM notifier.obligations o
                                            WHERE 'notice-' || o.obligation_id = s.stream_id
                                              AND o.version = s.version))
                       OR (s.stream_id LIKE 'reminder-%'
                           AND NOT EXISTS (SELECT 1 FROM notifier.reminders r
                                            WHERE 'reminder-' || r.reminder_id = s.stream_id
                                              AND r.version = s.version))""")
            return unhandled == 0 and behind == 0
        await eventually(check, timeout=30, interval=0.02, what=what or "the notifier to settle")
    finally:
        await conn.close()


async def wait_idle(client: httpx.AsyncClient, *, what: str = "") -> dict[str, Any]:
    """No reminder due and unclaimed, none claimed and unfinished (as the calendar shows)."""
    async def check() -> dict[str, Any] | None:
        response = await client.get("/calendar", headers=auth("admin-1"))
        counts = response.json()["reminder_counts"]
        return None if counts.get("due") or counts.get("claimed") else counts
    result: dict[str, Any] = await eventually(check, timeout=30, interval=0.02,
                                              what=what or "the due reminders to be sent")
    return result


Step = Callable[["Upstream"], Any]
