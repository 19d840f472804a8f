"""The event store port, its PostgreSQL implementation, and an in-memory one for unit tests.

Both implementations pass one contract suite (tests/shared/test_store_contract.py), so the fake
cannot drift from the real thing.
"""
from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from shared.canonical import canonical_json, sha256
from shared.errors import ConcurrencyError, IdempotencyConflictError, StreamPermissionError, TransientError
from shared.messages import NewEvent, RecordedEvent

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# What code that runs SQL is handed: a direct connection, or one borrowed from a pool (a proxy of
# the same interface). A string, because the proxy is not subscriptable at run time.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# Expected versions: a number n > 0 means "exactly at version n".
ANY = -1
EXISTS = -2
NO_STREAM = 0


@dataclass(frozen=True, slots=True)
class Appended:
    stream_id: str
    stream_version: int
    event_id: uuid.UUID


class EventStore(Protocol):
    async def append(self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None,
                     *, conn: Any = None) -> list[Appended]:
        """Append atomically; `expected` maps stream id to ANY/EXISTS/NO_STREAM/n (default ANY)."""

    async def read_stream(self, stream_id: str, after_version: int = 0, *,
                          conn: Any = None) -> list[RecordedEvent]: ...

    async def stream_version(self, stream_id: str, *, conn: Any = None, lock: bool = False) -> int: ...

    async def read_committed(self, after: tuple[int, int], limit: int = 1000) -> list[RecordedEvent]:
        """Events in commit-safe order after the cursor (tx_id, tx_seq); never skips a late commit."""

    async def read_all(self, after_position: int = 0, limit: int = 1000,
                       categories: Sequence[str] | None = None) -> list[RecordedEvent]:
        """Sequenced events (with dense `global_position`) after a position, in pages."""


def _expected_for(events: Sequence[NewEvent], expected: Mapping[str, int] | None) -> dict[str, int]:
    streams = {e.stream_id: ANY for e in events}
    for stream_id, version in (expected or {}).items():
        if stream_id not in streams:
            raise ValueError(f"expected version given for {stream_id!r}, which has no event here")
        if version < EXISTS:
            raise ValueError(f"bad expected version {version} for {stream_id!r}")
        streams[stream_id] = version
    return streams


def _hashes(event: NewEvent) -> tuple[bytes, bytes, bytes, bytes]:
    payload = canonical_json(event.payload)
    metadata = canonical_json(event.metadata)
    return payload, metadata, sha256(payload), sha256(metadata)  # encode once, hash those bytes


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _json_encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs every pool connection uses: jsonb in and out as Python objects."""
    await conn.set_type_codec("jsonb", encoder=_json_encode, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_json_encode, decoder=json.loads, schema="pg_catalog")


def login_dsn(dsn: str, role: str, password: str | None = None) -> str:
    """`dsn` with `role` (and its password) as the user: a service logs in as its own role, never
    as the administrator the DSN may name (that would let its session become anyone). The same
    holds for a broker URL (`amqp://…`)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    user = quote(role, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


async def create_pool(dsn: str, *, role: str | None = None, password: str | None = None,
                      min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    """A pool of connections logged in as `role` (a service's login role), if given."""
    settings = dict(kwargs.pop("server_settings", {}) or {})
    settings.setdefault("application_name", f"lookback:{role or 'admin'}")
    # Idle-in-transaction sessions would hold back the transaction-id horizon for every reader.
    settings.setdefault("idle_in_transaction_session_timeout", "60000")
    if role:
        dsn = login_dsn(dsn, role, password)
    kwargs.setdefault("reset", keep_session)
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     init=init_connection, server_settings=settings, **kwargs)


async def keep_session(_: asyncpg.Connection) -> None:
    """What a pool does to a connection given back, beyond rolling back an open transaction and
    forgetting its listeners (asyncpg does both anyway): nothing. asyncpg's default sends a reset
    query (RESET ALL, UNLISTEN *, advisory unlocks, CLOSE ALL) on every release, one more round
    trip for each consumer transaction; our code keeps no session state on pooled connections
    (no SET, no session advisory lock, no cursor outside a transaction). Whoever adds some must
    reset it before giving the connection back."""


def translate_error(exc: BaseException) -> BaseException:
    """Driver errors become ours at this one boundary; the cause is kept by the caller's `from`."""
    state = getattr(exc, "sqlstate", None)
    if state == "LB001":
        return ConcurrencyError(str(exc))
    if state == "LB002":
        return IdempotencyConflictError(str(exc))
    if state == "42501":
        return StreamPermissionError(str(exc))
    if state == "23505" and getattr(exc, "constraint_name", None) == "events_event_id_key":
        # An id reused for another event on the exact-version path (es.append_one, 0007).
        return IdempotencyConflictError(f"event id already used elsewhere: {exc}")
    if isinstance(exc, (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                        asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.InterfaceError,
                        asyncio.TimeoutError)):
        return TransientError(f"database unavailable: {exc}")
    return exc


_APPEND = "SELECT * FROM es.append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_APPEND_ONE = "SELECT * FROM es.append_one($1, $2, $3, $4, $5, $6, $7, $8, $9)"


def _event_columns(alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return (f"{p}stream_id, {p}stream_version, {p}event_id, {p}event_type, {p}schema_version, "
            f"{p}payload, {p}metadata, {p}tx_id::text::bigint AS tx_id, {p}tx_seq")


_EVENT_COLUMNS = _event_columns()


def _recorded(row: asyncpg.Record | Mapping[str, Any], position: int | None = None) -> RecordedEvent:
    return RecordedEvent(
        stream_id=row["stream_id"], stream_version=row["stream_version"], event_id=row["event_id"],
        event_type=row["event_type"], schema_version=row["schema_version"], payload=row["payload"],
        metadata=row["metadata"], tx_id=row["tx_id"], tx_seq=row["tx_seq"],
        global_position=position if position is not None else row.get("global_position"),
    )


class PostgresEventStore:
    """The event store on an asyncpg pool. Every append is one call of `es.append` (one round trip)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _conn(self, conn: Connection | None) -> AsyncIterator[Connection]:
        if conn is not None:
            yield conn
            return
        try:
            async with self.pool.acquire() as acquired:
                yield acquired
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise TransientError(f"database unavailable: {exc}") from exc

    async def append(self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None,
                     *, conn: Any = None) -> list[Appended]:
        if not events:
            return []
        streams = _expected_for(events, expected)
        if len(events) == 1:
            return [await self._append_one(events[0], streams[events[0].stream_id], conn)]
        ids, types, versions, payloads, metadata, phashes, mhashes, stream_ids = ([] for _ in range(8))
        for event in events:
            payload, meta, phash, mhash = _hashes(event)
            stream_ids.append(event.stream_id)
            ids.append(event.event_id)
            types.append(event.event_type)
            versions.append(event.schema_version)
            payloads.append(payload.decode())
            metadata.append(meta.decode())
            phashes.append(phash)
            mhashes.append(mhash)
        async with self._conn(conn) as c:
            try:
                rows = await c.fetch(_APPEND, list(streams), list(streams.values()), stream_ids, ids,
                                     types, versions, payloads, metadata, phashes, mhashes)
            except asyncpg.PostgresError as exc:
                translated = translate_error(exc)
                if translated is exc:
                    raise
                raise translated from exc
        return [Appended(r["stream_id"], r["stream_version"], r["event_id"]) for r in rows]

    async def _append_one(self, event: NewEvent, expected: int, conn: Any) -> Appended:
        """The commonest call, with scalar arguments: the same contract, a third less work
        (sql/0005_append_one.sql)."""
        payload, meta, phash, mhash = _hashes(event)
        async with self._conn(conn) as c:
            try:
                row = await c.fetchrow(_APPEND_ONE, event.stream_id, expected, event.event_id,
                                       event.event_type, event.schema_version, payload.decode(),
                                       meta.decode(), phash, mhash)
            except asyncpg.PostgresError as exc:
                translated = translate_error(exc)
                if translated is exc:
                    raise
                raise translated from exc
        if row is None:  # es.append_one returns its row or raises; never nothing
            raise RuntimeError("es.append_one returned no row")
        return Appended(event.stream_id, row["stream_version"], event.event_id)

    async def read_stream(self, stream_id: str, after_version: int = 0, *,
                          conn: Any = None) -> list[RecordedEvent]:
        async with self._conn(conn) as c:
            rows = await c.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM es.events WHERE stream_id = $1 AND stream_version > $2 "
                "ORDER BY stream_version", stream_id, after_version)
        return [_recorded(r) for r in rows]

    async def stream_version(self, stream_id: str, *, conn: Any = None, lock: bool = False) -> int:
        """The stream's head version (0: no stream). With `lock`, inside the caller's transaction,
        the stream's row stays locked until it ends: writers of a hot stream that decide from its
        version queue for it instead of racing and retrying (an existing stream only)."""
        query = "SELECT version FROM es.streams WHERE stream_id = $1"
        if lock:
            query += " FOR NO KEY UPDATE"
        async with self._conn(conn) as c:
            version = await c.fetchval(query, stream_id)
        return version or 0

    async def read_committed(self, after: tuple[int, int], limit: int = 1000) -> list[RecordedEvent]:
        async with self._conn(None) as c:
            rows = await c.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM es.read_committed($1::text::xid8, $2, $3)",
                str(after[0]), after[1], limit)
        return [_recorded(r) for r in rows]

    async def read_all(self, after_position: int = 0, limit: int = 1000,
                       categories: Sequence[str] | None = None) -> list[RecordedEvent]:
        query = (f"SELECT {_event_columns('e')}, l.global_position FROM es.ledger l "
                 "JOIN es.events e ON e.event_id = l.event_id WHERE l.global_position > $1 ")
        args: list[Any] = [after_position, limit]
        if categories:
            query += "AND e.category = ANY($3::text[]) "
            args.append(list(categories))
        query += "ORDER BY l.global_position LIMIT $2"
        async with self._conn(None) as c:
            rows = await c.fetch(query, *args)
        return [_recorded(r) for r in rows]


# --------------------------------------------------------------------------------------------
# In memory (unit tests of pure logic only)


class InMemoryEventStore:
    """The same contract as PostgresEventStore, in a dict. Sequencing happens on append."""

    def __init__(self) -> None:
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._by_id: dict[uuid.UUID, RecordedEvent] = {}
        self._log: list[RecordedEvent] = []
        self._lock = asyncio.Lock()

    async def append(self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None,
                     *, conn: Any = None) -> list[Appended]:
        if not events:
            return []
        streams = _expected_for(events, expected)
        async with self._lock:
            existing = [self._by_id[e.event_id] for e in events if e.event_id in self._by_id]
            if existing:
                if len(existing) == len(events) and self._is_retry(events, streams):
                    return [Appended(r.stream_id, r.stream_version, r.event_id) for r in existing]
                raise IdempotencyConflictError(
                    f"append overlaps {len(existing)} of {len(events)} existing event ids, "
                    "or names them at other positions")
            for stream_id, exp in sorted(streams.items()):
                current = len(self._streams.get(stream_id, []))
                if (exp == NO_STREAM and current != 0) or (exp == EXISTS and current == 0) or (
                        exp > 0 and current != exp):
                    raise ConcurrencyError(f"stream {stream_id} is at version {current}, expected {exp}")
            appended = []
            for event in events:
                _hashes(event)  # the same refusals (floats) as the real store
                stream = self._streams.setdefault(event.stream_id, [])
                recorded = RecordedEvent(
                    stream_id=event.stream_id, stream_version=len(stream) + 1,
                    event_id=event.event_id, event_type=event.event_type,
                    schema_version=event.schema_version, payload=copy.deepcopy(event.payload),
                    metadata=copy.deepcopy(event.metadata), tx_id=len(self._log) + 1, tx_seq=1,
                    global_position=len(self._log) + 1)
                stream.append(recorded)
                self._by_id[event.event_id] = recorded
                self._log.append(recorded)
                appended.append(Appended(recorded.stream_id, recorded.stream_version, recorded.event_id))
            return appended

    def _is_retry(self, events: Sequence[NewEvent], streams: Mapping[str, int]) -> bool:
        bases: dict[str, int] = {}
        seen: dict[str, int] = {}
        for event in events:
            recorded = self._by_id[event.event_id]
            if recorded.stream_id != event.stream_id:
                return False
            k = seen.get(event.stream_id, 0)
            seen[event.stream_id] = k + 1
            base = recorded.stream_version - k
            if bases.setdefault(event.stream_id, base) != base:
                return False
        return all(streams[s] < 0 or base == streams[s] + 1 for s, base in bases.items())

    async def read_stream(self, stream_id: str, after_version: int = 0, *,
                          conn: Any = None) -> list[RecordedEvent]:
        return [e for e in self._streams.get(stream_id, []) if e.stream_version > after_version]

    async def stream_version(self, stream_id: str, *, conn: Any = None, lock: bool = False) -> int:
        return len(self._streams.get(stream_id, []))

    async def read_committed(self, after: tuple[int, int], limit: int = 1000) -> list[RecordedEvent]:
        return [e for e in self._log if (e.tx_id, e.tx_seq) > after][:limit]

    async def read_all(self, after_position: int = 0, limit: int = 1000,
                       categories: Sequence[str] | None = None) -> list[RecordedEvent]:
        return [e for e in self._log[after_position:]
                if not categories or e.category in categories][:limit]
