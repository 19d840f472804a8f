"""What a service process knows about itself: lags measured on a connection of their own, and a
database probe for /readyz that tells "busy" from "down" (docs/adr/0011).

Every loop (sequencer, relay, consumers) keeps its connection to itself: a scrape that borrowed
the sequencer's lock connection once made it drop its leadership ("another operation is in
progress"), and a readiness check that queued for a pool connection behind the consumers said
the database was down when it was only busy. So one sampler task measures the lags every
`interval` on its own connection and keeps the figures; /metrics reads only those, and /readyz
asks the same connection (under its lock) whether the database answers.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.logging import get_logger
from shared.metrics import Metrics
from shared.sequencer import unsequenced_count
from shared.store import login_dsn

log = get_logger()

# Counting a backlog reads one index entry per event; past this many the figure is "at least".
COUNT_CAP = 1_000_000

_HEAD = "SELECT tree_size FROM es.sequencer_state"
_BACKLOG = f"""
    SELECT count(*) FROM (
        SELECT 1 FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
         WHERE l.global_position > $1 AND e.category = ANY($2::text[])
           AND ($3::text[] IS NULL OR e.event_type = ANY($3::text[]))
         LIMIT {COUNT_CAP}) backlog"""
_POSITIONS = "SELECT name, global_position FROM es.positions WHERE name = ANY($1::text[])"
# Where a broker consumer got to before this process started: the last event its inbox holds.
_INBOX_POSITION = """
    SELECT max(l.global_position) FROM es.inbox i JOIN es.ledger l ON l.event_id = i.event_id
     WHERE i.consumer = $1"""


@dataclass(frozen=True)
class Watched:
    """A reader of the ledger whose lag is measured.

    `label` names its gauge; `categories` and `event_types` (None: all types) say which sequenced
    events it must get through; its position is kept in memory by its loop (`position()`, None
    while unknown) or in es.positions under `position_key`. A broker consumer's position is the
    highest global position it handled; with several handlers at once a few events below it may
    still be in hand, so its lag can read low by at most its concurrency.
    """

    label: str
    categories: tuple[str, ...]
    event_types: tuple[str, ...] | None = None
    position: Callable[[], int | None] | None = None
    position_key: str | None = None
    inbox_consumer: str | None = None   # learn a broker consumer's first position from its inbox
    remember: Callable[[int], None] | None = None


class Sampler:
    """One connection, one task: lags every `interval`, the database probe for /readyz."""

    def __init__(self, *, dsn: str, role: str | None, password: str | None, metrics: Metrics,
                 relay: Watched | None = None, watched: Sequence[Watched] = (),
                 extras: Sequence[Callable[[asyncpg.Connection], Awaitable[None]]] = (),
                 interval: float = 1.0, query_timeout: float = 5.0) -> None:
        self.dsn = login_dsn(dsn, role, password) if role else dsn
        self.role = role
        self.metrics, self.relay, self.watched = metrics, relay, list(watched)
        self.extras = list(extras)  # further measurements, each given this connection
        self.interval, self.query_timeout = interval, query_timeout
        self.last_success: float | None = None
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.dsn, timeout=self.query_timeout,
                server_settings={"application_name": f"lookback:{self.role or 'admin'}:health"})
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def probe(self, timeout: float = 2.0) -> str:
        """"ok" if the database answered (now, or the sampler's last round was recent), else why not."""
        if self.last_success is not None and time.monotonic() - self.last_success < 3 * self.interval:
            return "ok"
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    conn = await self._connection()
                    await conn.fetchval("SELECT 1")
        except TimeoutError:
            return "unreachable: no answer in time"
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._drop()
            return f"unreachable: {type(exc).__name__}"
        self.last_success = time.monotonic()
        return "ok"

    async def sample(self) -> None:
        """Measure every lag once (raises if the database does not answer)."""
        async with self._lock:
            conn = await self._connection()
            timeout = self.query_timeout
            head = await conn.fetchval(_HEAD, timeout=timeout)
            self.metrics.ledger_head.set(head)
            self.metrics.sequencer_lag.set(await asyncio.wait_for(unsequenced_count(conn), timeout))
            keys = [w.position_key for w in (self.relay, *self.watched)
                    if w is not None and w.position_key is not None]
            stored = {r["name"]: r["global_position"]
                      for r in await conn.fetch(_POSITIONS, keys, timeout=timeout)} if keys else {}
            if self.relay is not None:
                lag = await self._backlog(conn, self.relay, stored)
                if lag is not None:
                    self.metrics.relay_lag.set(lag)
            for watched in self.watched:
                lag = await self._backlog(conn, watched, stored)
                if lag is not None:
                    self.metrics.consumer_lag.set(lag, watched.label)
            for extra in self.extras:
                try:
                    await asyncio.wait_for(extra(conn), timeout)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    raise
                except Exception as exc:  # e.g. the broker away: the other figures still count
                    log.info("metrics_extra_failed", reason=f"{type(exc).__name__}: {exc}"[:200])
        self.last_success = time.monotonic()

    async def _backlog(self, conn: asyncpg.Connection, watched: Watched,
                       stored: dict[str, int]) -> int | None:
        position = watched.position() if watched.position is not None else None
        if position is None and watched.position_key is not None:
            position = stored.get(watched.position_key, 0)
        if position is None and watched.inbox_consumer is not None:
            position = await conn.fetchval(_INBOX_POSITION, watched.inbox_consumer,
                                           timeout=self.query_timeout) or 0
            if watched.remember is not None:
                watched.remember(position)
        if position is None:
            return None
        types = list(watched.event_types) if watched.event_types is not None else None
        count: int = await conn.fetchval(_BACKLOG, position, list(watched.categories), types,
                                         timeout=self.query_timeout)
        return count

    async def run(self) -> None:
        self._stop.clear()
        failing = False
        while not self._stop.is_set():
            try:
                await self.sample()
                failing = False
            except Exception as exc:  # the database away, or anything else: try again later
                if not failing:  # once per outage, not every second
                    log.warning("metrics_sample_failed", reason=f"{type(exc).__name__}: {exc}"[:300])
                failing = True
                await self._drop()
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        self._stop.set()
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2.0)
            except Exception:
                conn.terminate()


def pool_load(pools: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """Connections in use per pool ("3/10"), and whether any pool is fully in use (busy)."""
    shown, busy = {}, False
    for name, pool in pools.items():
        if pool is None:
            continue
        in_use = pool.get_size() - pool.get_idle_size()
        shown[name] = f"{in_use}/{pool.get_max_size()}"
        busy = busy or in_use >= pool.get_max_size()
    return shown, busy
