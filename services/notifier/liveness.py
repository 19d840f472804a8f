"""Which notifier instances are running, proven by PostgreSQL rather than by clocks.

Each instance takes a session-level advisory lock keyed by its own id on a connection it keeps
for its lifetime. When the process dies (crash, SIGKILL, lost machine), PostgreSQL ends the
session and the lock is free: another instance asking `pg_try_advisory_xact_lock` on that key
gets it, which is the proof that the instance is gone. No lease to expire, so a slow send is
never mistaken for a dead sender, and a simulated clock jumping a month cannot expire anything.

The same connection listens for `notifier_calendar`: the projection notifies it when an
obligation changes, and the scheduler wakes up.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

# Two-key advisory locks ("LKNT", instance key) never meet the kernel's single-key locks.
LOCK_CLASS = 0x4C4B4E54
CALENDAR_CHANNEL = "notifier_calendar"


def _key(instance_id: str) -> int:
    return uuid.UUID(instance_id).int & 0x7FFFFFFF


class Liveness:
    """This instance's id, valid while its lock is held."""

    def __init__(self) -> None:
        self.instance_id: str | None = None
        self._conn: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._on_notify: Callable[..., Any] | None = None

    async def start(self, pool: asyncpg.Pool, on_notify: Callable[..., Any]) -> str:
        self._pool, self._on_notify = pool, on_notify
        return await self._register()

    async def _register(self) -> str:
        assert self._pool is not None and self._on_notify is not None
        conn = await self._pool.acquire()
        instance_id = uuid.uuid4().hex
        await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, _key(instance_id))
        await conn.add_listener(CALENDAR_CHANNEL, self._on_notify)
        self._conn, self.instance_id = conn, instance_id
        return instance_id

    async def ensure(self) -> str:
        """The current id; a new one if the lock's connection was lost (the old id is then
        'gone' for everyone, ourselves included, and its claims are taken over like any)."""
        if self._conn is None or self._conn.is_closed() or self.instance_id is None:
            await self._release()
            return await self._register()
        return self.instance_id

    async def stop(self) -> None:
        await self._release()

    async def _release(self) -> None:
        conn, self._conn, self.instance_id = self._conn, None, None
        if conn is None or self._pool is None:
            return
        try:
            if not conn.is_closed():
                await conn.remove_listener(CALENDAR_CHANNEL, self._on_notify)
                await conn.execute("SELECT pg_advisory_unlock_all()")
            await asyncio.wait_for(self._pool.release(conn), 5)
        except Exception:
            conn.terminate()

    @staticmethod
    async def is_gone(conn: Any, instance_id: str) -> bool:
        """True if no session holds the instance's lock (call inside a transaction: the probe's
        own lock is released when that transaction ends)."""
        try:
            key = _key(instance_id)
        except ValueError:
            return True
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)",
                                        LOCK_CLASS, key))
