"""Replay: rebuild every service's read models from the log alone, and compare them with the live ones.

The kernel knows no service: the application hands it the `ServiceSpec`s (their projections,
consumers, deps and migrations). The rebuild happens in a fresh database (migrated by the same
migrations, so every service schema is new and empty), never in the live one:

1. the scratch database receives the log one ledger entry at a time, in global order, exactly as
   the live ledger holds it (event row and ledger row; nothing else of the live database);
2. after each entry, every projection and consumer that wants it handles it there, through the
   same `handle_in_transaction` as in production, with the time the event occurred as "now";
3. a reaction's own appends are not written: the events it decides are already in the log, at
   later positions, and arrive in step 1. The replay checks instead that every event a reaction
   decides under a deterministic id is one the log holds (a reaction that decides differently on
   replay is a finding too);
4. every table of every service schema is compared row by row, by primary key, with the live
   one. The answer is `identical`, or the first difference by table and key (the columns that
   differ are named, their values are not printed: they may be personal data).

Tables or columns that do not derive from the log (an access log written by reads, a column that
records when a reaction ran) are named by the application with a reason, and left out.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.consuming import ConsumerRuntime, ConsumerSpec, Outcome, handle_in_transaction
from shared.envelope import Delivery
from shared.logging import get_logger
from shared.messages import NewEvent
from shared.migrations import migrate
from shared.pipeline import CommandPipeline
from shared.store import Appended, Connection, PostgresEventStore, create_pool

log = get_logger()

KERNEL_SCHEMAS = ("es", "pii", "public", "information_schema")
_PAGE = 500
_LIVE_ENTRIES = """
    SELECT l.global_position, l.stream_id, l.stream_version, l.event_id, l.event_type,
           l.payload_hash, l.metadata_hash, l.leaf_hash, l.tx_id, l.tx_seq,
           e.schema_version, e.payload::text AS payload, e.metadata::text AS metadata,
           e.payload_hash AS e_payload_hash, e.metadata_hash AS e_metadata_hash
      FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
     WHERE l.global_position > $1 AND l.global_position <= $2
     ORDER BY l.global_position LIMIT $3"""
_INSERT_EVENT = """
    INSERT INTO es.events (stream_id, stream_version, event_id, event_type, schema_version, payload,
                           metadata, payload_hash, metadata_hash)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9)"""
_INSERT_LEDGER = """
    INSERT INTO es.ledger (global_position, stream_id, stream_version, event_id, event_type,
                           payload_hash, metadata_hash, leaf_hash, tx_id, tx_seq)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"""
_BUMP_STREAM = """
    INSERT INTO es.streams (stream_id, version) VALUES ($1, $2)
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version"""


@dataclass(frozen=True)
class Exempt:
    """A table (columns=None) or some of its columns that do not derive from the log, and why."""

    table: str
    columns: frozenset[str] | None
    reason: str


@dataclass
class ReplayReport:
    events: int
    tables: list[str] = field(default_factory=list)
    difference: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.difference is None

    def summary(self) -> str:
        if self.difference is None:
            return f"identical: {len(self.tables)} tables rebuilt from {self.events} events"
        return f"DIFFERENT {self.difference}"


class ReplayStore(PostgresEventStore):
    """The scratch store: reads as usual; an append writes nothing and remembers the ids it was
    asked to write (they must be events the log holds)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.decided: list[tuple[uuid.UUID, str]] = []

    async def append(self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None,
                     *, conn: Any = None) -> list[Appended]:
        appended = []
        versions: dict[str, int] = {}
        for event in events:
            if event.stream_id not in versions:
                versions[event.stream_id] = await self.stream_version(event.stream_id, conn=conn)
            versions[event.stream_id] += 1
            self.decided.append((event.event_id, event.event_type))
            appended.append(Appended(event.stream_id, versions[event.stream_id], event.event_id))
        return appended


def scratch_dsn(dsn: str, database: str) -> str:
    """The same server and credentials, another database (the query may name a socket folder,
    `?host=/path/to/pgdata`, as the embedded default's does: its slashes are not the path's)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def replay(live_dsn: str, specs: Sequence[Any], settings: Any, *,
                 exempt: Sequence[Exempt] = (), keep: bool = False,
                 migration_folders: Sequence[Any] | None = None) -> ReplayReport:
    """Rebuild the read models of `specs` from the log of `live_dsn` and compare (see above)."""
    admin = await asyncpg.connect(live_dsn)
    scratch = f"lookback_replay_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
        folders = list(migration_folders if migration_folders is not None
                       else [s.migrations for s in specs if s.migrations is not None])
        try:
            return await _replay_into(live_dsn, scratch_dsn(live_dsn, scratch), specs, settings,
                                      folders, exempt)
        finally:
            if not keep:
                await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            else:
                log.info("replay_database_kept", database=scratch)
    finally:
        await admin.close()


async def _replay_into(live_dsn: str, dsn: str, specs: Sequence[Any], settings: Any,
                       folders: list[Any], exempt: Sequence[Exempt]) -> ReplayReport:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, *folders)
    finally:
        await conn.close()
    pool = await create_pool(dsn, max_size=2)
    live = await asyncpg.connect(live_dsn)
    try:
        store = ReplayStore(pool)
        handlers: list[tuple[ConsumerSpec, ConsumerRuntime[Any]]] = []
        for spec in specs:
            deps = spec.build_deps(settings, pool) if spec.build_deps else None
            pipeline = CommandPipeline(service=spec.name, table=spec.commands,
                                       events=spec.contract.registry(), store=store, deps=deps)
            runtime = ConsumerRuntime(service=spec.name, store=store, deps=deps, commands=pipeline)
            handlers += [(consumer, runtime) for consumer in (*spec.projections, *spec.consumers)]
        async with live.transaction(isolation="repeatable_read", readonly=True):
            end = await live.fetchval("SELECT coalesce(max(global_position), 0) FROM es.ledger")
            report = ReplayReport(events=end)
            await _rebuild(live, pool, store, handlers, end, report)
            held = {r[0] for r in await live.fetch(
                "SELECT event_id FROM es.ledger WHERE event_id = ANY($1::uuid[])",
                [event_id for event_id, _ in store.decided])}
            strays = [(i, t) for i, t in store.decided if i not in held]
            if strays and report.difference is None:
                report.difference = (f"a reaction decided {strays[0][1]} {strays[0][0]} on replay, "
                                     f"which the log does not hold ({len(strays)} such event(s))")
            if report.difference is None:
                await _compare(live, pool, report, exempt)
        return report
    finally:
        await live.close()
        await pool.close()


async def _rebuild(live: asyncpg.Connection, pool: asyncpg.Pool, store: ReplayStore,
                   handlers: list[tuple[ConsumerSpec, ConsumerRuntime[Any]]], end: int,
                   report: ReplayReport) -> None:
    position = 0
    while position < end:
        rows = await live.fetch(_LIVE_ENTRIES, position, end, _PAGE)
        for row in rows:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(_INSERT_EVENT, row["stream_id"], row["stream_version"],
                                   row["event_id"], row["event_type"], row["schema_version"],
                                   row["payload"], row["metadata"], row["e_payload_hash"],
                                   row["e_metadata_hash"])
                await conn.execute(_INSERT_LEDGER, row["global_position"], row["stream_id"],
                                   row["stream_version"], row["event_id"], row["event_type"],
                                   row["payload_hash"], row["metadata_hash"], row["leaf_hash"],
                                   row["tx_id"], row["tx_seq"])
                await conn.execute(_BUMP_STREAM, row["stream_id"], row["stream_version"])
            recorded = (await store.read_all(row["global_position"] - 1, 1))[0]
            category = recorded.category
            for consumer, runtime in handlers:
                if category not in consumer.categories or consumer.reaction_for(
                        recorded.event_type) is None:
                    continue
                delivery = Delivery.from_recorded(recorded, source=consumer.producer)
                now = delivery.occurred_at or datetime.now(UTC)
                async with pool.acquire() as conn, conn.transaction():
                    result = await handle_in_transaction(conn, consumer, delivery, runtime=runtime,
                                                         now=now)
                if result.outcome is Outcome.DEAD:
                    report.notes.append(f"position {row['global_position']}: {consumer.name} "
                                        f"dead-lettered it on replay: {result.reason}")
            position = row["global_position"]
        if not rows:
            break


async def _service_tables(conn: Connection) -> list[tuple[str, list[str]]]:
    """(schema.table, primary key columns) of every table outside the kernel's schemas."""
    rows = await conn.fetch(
        """SELECT n.nspname || '.' || c.relname AS name,
                  array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                         ORDER BY k.ord) AS key
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
            WHERE c.relkind = 'r' AND n.nspname <> ALL($1::text[]) AND n.nspname NOT LIKE 'pg\\_%'
            ORDER BY 1""", list(KERNEL_SCHEMAS))
    return [(r["name"], list(r["key"] or [])) for r in rows]


async def _rows(conn: Any, table: str, key: list[str]) -> list[dict[str, Any]]:
    order = ", ".join(f'"{k}"' for k in key) or "1"
    rows = await conn.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t ORDER BY {order}")
    return [json.loads(r["row"]) for r in rows]


async def _compare(live: asyncpg.Connection, pool: asyncpg.Pool, report: ReplayReport,
                   exempt: Sequence[Exempt]) -> None:
    by_table = {e.table: e for e in exempt}
    async with pool.acquire() as conn:
        tables = await _service_tables(conn)
        for table, key in tables:
            rule = by_table.get(table)
            if rule is not None and rule.columns is None:
                report.notes.append(f"{table} left out: {rule.reason}")
                continue
            ignored: frozenset[str] = frozenset()
            if rule is not None and rule.columns is not None:
                ignored = rule.columns
                report.notes.append(f"{table}: {', '.join(sorted(ignored))} left out: {rule.reason}")
            report.tables.append(table)
            rebuilt, current = await _rows(conn, table, key), await _rows(live, table, key)
            difference = _first_difference(table, key, current, rebuilt, ignored)
            if difference is not None:
                report.difference = difference
                return


def _first_difference(table: str, key: list[str], live: list[dict[str, Any]],
                      rebuilt: list[dict[str, Any]], ignored: frozenset[str]) -> str | None:
    def key_of(row: dict[str, Any]) -> tuple[str, ...]:
        # a table without a primary key is compared as a multiset of whole rows
        return tuple(json.dumps(row.get(k) if key else row, ensure_ascii=False, sort_keys=True)
                     for k in (key or ["*"]))

    def named(row: dict[str, Any]) -> str:
        return ", ".join(f"{k}={row.get(k)}" for k in key) or "(no primary key)"

    live_by_key = {key_of(r): r for r in live}
    rebuilt_by_key = {key_of(r): r for r in rebuilt}
    for k in sorted(set(live_by_key) | set(rebuilt_by_key)):
        a, b = live_by_key.get(k), rebuilt_by_key.get(k)
        if a is None:
            assert b is not None  # the key came from one of the two
            return f"{table} [{named(b)}]: rebuilt from the log, but missing from the live table"
        if b is None:
            return f"{table} [{named(a)}]: in the live table, but not rebuilt from the log"
        columns = sorted(c for c in set(a) | set(b) if c not in ignored and a.get(c) != b.get(c))
        if columns:
            return f"{table} [{named(a)}]: {', '.join(columns)} differ(s) from the rebuilt row"
    return None
