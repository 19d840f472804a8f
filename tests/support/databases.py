"""The test PostgreSQL: where it is, a fresh database per test, reads on a DSN, and the event store
as another service sees it (logged in as that service's role).

Connections are a budget shared with other work on the same server (TESTING.md "Bounded
connections"): each test database refuses more than `DATABASE_CONNECTION_LIMIT` concurrent
connections, so a test that opens too many fails alone and says why, instead of the whole
server running out; helpers here open one connection and close it.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from shared.provisioning import service_role
from shared.store import PostgresEventStore, create_pool

ADMIN_DSN = os.environ.get("LOOKBACK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DATABASE_PREFIX = "lookback_t_"

# CI's server allows 100 connections and other work may hold ~30 of them; tests run one at a time,
# so a test may hold 40 (and the session one more, to create and drop databases). The largest
# scenario, every service at once on RabbitMQ with its pools and a sequencer candidate, peaks near
# 30 (tests/shared/test_connection_budget.py). The limit binds every login role; superuser
# connections are counted but not refused, which is why that test counts them too.
DATABASE_CONNECTION_LIMIT = int(os.environ.get("LOOKBACK_TEST_DATABASE_CONNECTION_LIMIT", "40"))


def dsn_for(database: str, user: str = "postgres") -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0]
    scheme, rest = base.split("://", 1)
    host = rest.split("@", 1)[-1]
    return f"{scheme}://{user}@{host}/{database}"


async def admin_execute(statement: str) -> None:
    """One statement on the cluster's maintenance database, on a connection held only for it."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(template: str) -> AsyncIterator[str]:
    """A fresh, migrated database cloned from the template; dropped afterwards."""
    name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" '
                        f"CONNECTION LIMIT {DATABASE_CONNECTION_LIMIT}")
    try:
        yield dsn_for(name)
    finally:
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def execute(dsn: str, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


async def event_count(dsn: str, categories: Sequence[str] | None = None) -> int:
    """Events in the store (of these stream categories, if given)."""
    if categories is None:
        count: int = await fetchval(dsn, "SELECT count(*) FROM es.events")
    else:
        count = await fetchval(dsn, "SELECT count(*) FROM es.events WHERE category = ANY($1::text[])",
                               list(categories))
    return count


@asynccontextmanager
async def pool_as(dsn: str, service: str, *, max_size: int = 1) -> AsyncIterator[asyncpg.Pool]:
    """A small pool logged in as `service`'s database role (what row security and grants see)."""
    pool = await create_pool(dsn, role=service_role(service), max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def store_as(dsn: str, service: str) -> AsyncIterator[PostgresEventStore]:
    """The event store as `service` writes to it: its database role, so only its own stream
    categories are accepted, exactly as when that service appends."""
    async with pool_as(dsn, service) as pool:
        yield PostgresEventStore(pool)
