"""The notifier running for real: a local SMTP server and a local webhook server started by the
test, tokens per role, other services' events appended as those services append them (their own
database roles and categories), and waits for the notifier to have taken everything in."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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
from shared.auth import hash_token
from shared.campaign import load_campaign
from shared.clock import SimulatedClock
from shared.messages import Actor, Event, Role, new_event
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool
from tests.faults import eventually
from tests.shared.test_bus import running

CAMPAIGN = load_campaign()
TZ = CAMPAIGN.tz
CAMPAIGN_START = datetime(2024, 3, 4, 0, 0, tzinfo=TZ)

PRINCIPALS = {
    "admin": Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN),
    "leader": Actor(id="lead-1", name="分管领导(示例)", role=Role.LEADER),
    "inspector": Actor(id="insp-1", name="检查员(示例)", role=Role.INSPECTOR),
    "echeng-reporter": Actor(id="ec-r", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER,
                             unit="echeng"),
}
TOKENS = {name: f"tok-notifier-{name}" for name in PRINCIPALS}
TOKENS_JSON = json.dumps({hash_token(TOKENS[n]): a.model_dump(mode="json")
                          for n, a in PRINCIPALS.items()})
WANTED = frozenset(t for spec in CONSUMERS for t in spec.event_types)


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


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


def service_settings(dsn: str, data_dir: Path, **extra: Any) -> Settings:
    return Settings(database_url=dsn, tokens_json=TOKENS_JSON, data_dir=data_dir,
                    poll_interval=0.02, publish_timeout=3.0, graceful_timeout=3.0, **extra)


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

    ROLES = {"registry": "lookback_registry", "rectification": "lookback_rectification",
             "inspection": "lookback_inspection"}

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.pools: dict[str, asyncpg.Pool] = {}
        self.appended: list[uuid.UUID] = []   # ids of events the notifier consumes

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()

    async def append(self, stream_id: str, event: Event, *, occurred_at: datetime) -> None:
        service = event.type_name.split(".")[0]
        if service not in self.pools:
            self.pools[service] = await create_pool(self.dsn, role=self.ROLES[service], max_size=2)
        actor = Actor(id=f"{service}-test", name="示例", role=Role.CITY_ADMIN)
        new = new_event(stream_id, event, actor=actor, occurred_at=occurred_at)
        await PostgresEventStore(self.pools[service]).append([new])
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
        response = await client.get("/calendar", headers=as_("admin"))
        counts = response.json()["reminder_counts"]
        return None if counts.get("due") or counts.get("claimed") else counts
    result: dict[str, Any] = await eventually(check, timeout=30, interval=0.02,
                                              what=what or "the due reminders to be sent")
    return result


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


Step = Callable[["Upstream"], Any]
