"""Read-your-writes for the person who just acted (docs/adr/0013).

Queries read projections, which follow the sequenced ledger a moment behind the append. A person
who has just acted must still see the result: the picks right after the reveal, the ledger right
after an assessment. So:

1. A command's HTTP answer carries a **consistency token** in `X-Lookback-Token`: the id of an
   event the command appended (no header when it appended nothing). The id is known at commit;
   a ledger position is not (the sequencer assigns it later), so the token is the event id.
2. A query sent with `X-Lookback-After: <token>` (or `?lookback_after=<token>`, for a link a
   browser follows) waits until this service has seen that command's transaction:
   - its own events (same service): every projection of the service has passed their ledger
     positions;
   - another service's events (a cross-service read): every consumer of this service that reacts
     to them has handled them (its `es.inbox` row), and the projections have passed the events
     that reaction appended (their ids derive from the causing event, shared/pipeline.py).
   A token naming events this service does not consume has nothing to wait for.
3. The wait is bounded (`Settings.read_your_writes_wait`, 5 s by default). When it runs out the
   answer is **503** `not_yet_consistent` with `Retry-After` and a Chinese message, never a stale
   200: a stale page shown as current is exactly the bug this fixes, and a spreadsheet or an
   HTML page has nowhere to carry a `stale` marker. An unknown or malformed token is a 422.

A service applies it to its routes as one dependency: `APIRouter(dependencies=[ReadYourWrites])`.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from fastapi import Depends, Header, Query, Request

from shared.errors import LookbackError, ValidationFailed
from shared.pipeline import CommandResult, reaction_event_id
from shared.store import Connection

TOKEN_HEADER = "X-Lookback-Token"
AFTER_HEADER = "X-Lookback-After"
AFTER_PARAM = "lookback_after"
_STATE_KEY = "lookback_token"
# Polls start fast (a projection usually follows within tens of milliseconds) and slow down to
# this, so a long wait costs a handful of queries per second, not a busy loop.
_FIRST_POLL, _MAX_POLL = 0.01, 0.1


class NotYetConsistent(LookbackError):
    """The acting user's write is not visible here yet, within the bounded wait (HTTP 503)."""

    status = 503
    code = "not_yet_consistent"
    retry_after_seconds = 1

    def __init__(self, message: str) -> None:
        super().__init__(message, zh="您刚才的操作仍在处理中，这里暂未显示结果。请稍候几秒后刷新。")

    @property
    def http_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


# ----- the token a command answers with --------------------------------------------------------


def remember(request: Any, result: CommandResult) -> None:
    """Keep the command's token on the request; `ConsistencyTokens` puts it on the answer. With
    several commands in one request the last one's wins (it committed last)."""
    if result.appended:
        request.state.lookback_token = str(result.appended[-1].event_id)


def token_of(result: CommandResult) -> str | None:
    return str(result.appended[-1].event_id) if result.appended else None


class ConsistencyTokens:
    """Pure ASGI middleware: adds `X-Lookback-Token` to an answer whose request ran a command."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: Any) -> None:
            if message["type"] == "http.response.start":
                token = (scope.get("state") or {}).get(_STATE_KEY)
                if token:
                    message["headers"] = [*message.get("headers", ()),
                                          (TOKEN_HEADER.lower().encode(), token.encode())]
            await send(message)

        await self.app(scope, receive, send_with_token)


# ----- waiting for it ---------------------------------------------------------------------------


class _Consumer(Protocol):
    name: str

    @property
    def categories(self) -> tuple[str, ...]: ...

    @property
    def event_types(self) -> list[str]: ...


@dataclass(frozen=True)
class ReadFence:
    """What one service must have seen of a token: its projections (own events, by position) and
    its consumers (other services' events, by inbox row, then their reactions' positions)."""

    service: str
    projections: Sequence[_Consumer]
    consumers: Sequence[_Consumer]

    async def pending(self, conn: Connection, token: uuid.UUID) -> list[str]:
        """What is not seen yet, in words (empty: the token's writes are visible here)."""
        rows = await _transaction_of(conn, token)
        if not rows:
            raise UnknownToken(token)
        waiting = await self._projections_behind(conn, rows)
        for consumer in self.consumers:
            wanted = [r for r in rows if r["category"] in consumer.categories
                      and r["event_type"] in consumer.event_types]
            if not wanted:
                continue
            handled = {r["event_id"] for r in await conn.fetch(
                "SELECT event_id FROM es.inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
                consumer.name, [r["event_id"] for r in wanted])}
            for row in wanted:
                if row["event_id"] not in handled:
                    waiting.append(f"{consumer.name} has not handled {row['event_type']}")
                    continue
                # What the reaction appended commits with the inbox row; its ids derive from the
                # causing event, so its first event names the reaction's transaction.
                first = reaction_event_id(self.service, row["event_id"], 0)
                waiting += await self._projections_behind(conn, await _transaction_of(conn, first))
        return waiting

    async def _projections_behind(self, conn: Connection,
                                  rows: Sequence[asyncpg.Record]) -> list[str]:
        behind = []
        for projection in self.projections:
            mine = [r for r in rows if r["category"] in projection.categories]
            if not mine:
                continue
            if any(r["global_position"] is None for r in mine):
                behind.append("the ledger has not sequenced the events yet")
                continue
            target = max(r["global_position"] for r in mine)
            position = await conn.fetchval(
                "SELECT global_position FROM es.positions WHERE name = $1",
                f"local:{projection.name}") or 0
            if position < target:
                behind.append(f"{projection.name} is at {position}, not yet at {target}")
        return behind

    async def wait(self, pool: asyncpg.Pool, token: uuid.UUID, *, timeout: float) -> None:
        """Return once the token's writes are visible here; NotYetConsistent after `timeout`."""
        deadline = time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            async with pool.acquire() as conn:
                waiting = await self.pending(conn, token)
            if not waiting:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotYetConsistent(f"after {timeout:g} s still waiting: " + "; ".join(
                    sorted(set(waiting))))
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL)


class UnknownToken(ValidationFailed):
    def __init__(self, token: uuid.UUID) -> None:
        super().__init__([(AFTER_HEADER, f"no event {token} was ever recorded: pass the "
                                         f"{TOKEN_HEADER} of a command's answer")],
                         zh="一致性令牌无效：请使用操作返回的 X-Lookback-Token。")


async def _transaction_of(conn: Connection, event_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every event appended in the same transaction as `event_id` (one command's, or one
    reaction's), with its ledger position once sequenced."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT e.event_id, e.category, e.event_type, l.global_position
             FROM es.events e LEFT JOIN es.ledger l ON l.event_id = e.event_id
            WHERE e.tx_id = (SELECT tx_id FROM es.events WHERE event_id = $1)""", event_id)
    return rows


def parse_token(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise ValidationFailed([(AFTER_HEADER, "not a consistency token (the X-Lookback-Token "
                                               "of a command's answer)")],
                               zh="一致性令牌格式有误：请使用操作返回的 X-Lookback-Token。") from None


async def read_your_writes(
        request: Request,
        after_header: str | None = Header(None, alias=AFTER_HEADER, description=(
            "the X-Lookback-Token of a command you sent: the answer waits (bounded) until "
            "that command's result is visible here; 503 with Retry-After if not in time")),
        after_query: str | None = Query(None, alias=AFTER_PARAM, description=(
            f"the same as the {AFTER_HEADER} header, for links a browser follows")),
) -> None:
    """The dependency: waits for the caller's own write when a token is given, else nothing."""
    text = after_header or after_query
    if not text:
        return
    token = parse_token(text)
    runtime = request.app.state.runtime
    fence: ReadFence = runtime.read_fence
    await fence.wait(runtime.pool, token, timeout=runtime.settings.read_your_writes_wait)


ReadYourWrites = Depends(read_your_writes)
