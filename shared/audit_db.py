"""The live database as a source of the verifier, and the export it writes.

Everything is read in one REPEATABLE READ snapshot: checkpoints, then ledger entries joined to
their events, in export order (docs/audit-format.md §6). Large ledgers are checked by worker
processes that each read a range of positions from the same exported snapshot
(shared/audit_workers.py); the fold (shared/audit_verify.py) stays here. Verifying the database
also compares the sequencer's own tree head with the recomputed one.
"""
from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared import audit_workers
from shared.audit_entry import _decode, _Undecodable, canonical_line
from shared.audit_verify import Failure, Verifier, VerifyResult, feed_externals
from shared.audit_workers import Item, check_item, fold_items, process_pool, worker_count
from shared.merkle import Frontier

_CHECKPOINTS = """
    SELECT tree_size, root_hash, key_id, signature, note FROM es.checkpoints ORDER BY tree_size"""
_ENTRY_COLUMNS = """
    SELECT l.global_position, l.stream_id, l.stream_version, l.event_id::text, l.event_type,
           l.payload_hash, l.metadata_hash, l.leaf_hash,
           e.event_id IS NOT NULL AS has_event, e.stream_id AS e_stream_id,
           e.stream_version AS e_stream_version, e.event_id::text AS e_event_id,
           e.event_type AS e_event_type, e.schema_version, e.payload::text, e.metadata::text,
           e.payload_hash AS e_payload_hash, e.metadata_hash AS e_metadata_hash
      FROM es.ledger l LEFT JOIN es.events e ON e.event_id = l.event_id"""
_ENTRIES_AFTER = _ENTRY_COLUMNS + """
     WHERE l.global_position > $1 ORDER BY l.global_position LIMIT $2"""
_ENTRIES_BETWEEN = _ENTRY_COLUMNS + """
     WHERE l.global_position BETWEEN $1 AND $2 ORDER BY l.global_position"""


def _checkpoint_record(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "checkpoint", "tree_size": row["tree_size"], "root_hash": row["root_hash"].hex(),
            "key_id": row["key_id"], "signature": base64.b64encode(row["signature"]).decode(),
            "note": row["note"]}


def _entry_record(row: Any, decode: Callable[[str], Any]) -> dict[str, Any]:
    (position, stream_id, version, event_id, event_type, phash, mhash, leaf, has_event, e_stream_id,
     e_version, e_event_id, e_event_type, schema_version, payload, metadata, e_phash, e_mhash) = row
    ledger = {"global_position": position, "stream_id": stream_id, "stream_version": version,
              "event_id": event_id, "event_type": event_type, "payload_hash": phash.hex(),
              "metadata_hash": mhash.hex(), "leaf_hash": leaf.hex()}
    event = None
    if has_event:
        event = {"stream_id": e_stream_id, "stream_version": e_version, "event_id": e_event_id,
                 "event_type": e_event_type, "schema_version": schema_version,
                 "payload": decode(payload), "metadata": decode(metadata),
                 "payload_hash": e_phash.hex(), "metadata_hash": e_mhash.hex()}
    return {"kind": "entry", "ledger": ledger, "event": event}


def _lenient_decode(text: str) -> Any:
    try:
        return _decode(text)
    except ValueError as exc:
        return _Undecodable(str(exc))


async def database_records(conn: asyncpg.Connection, *, page_size: int = 5000,
                           on_page: Callable[[int], None] | None = None,
                           decode: Callable[[str], Any] = _lenient_decode
                           ) -> AsyncIterator[dict[str, Any]]:
    """Checkpoints, then ledger entries joined to their events, in export order.

    Call inside one REPEATABLE READ transaction so every page comes from the same snapshot. The
    export passes plain `json.loads`: a stored float is then written out as it is, and the file's
    verification reports it.
    """
    for row in await conn.fetch(_CHECKPOINTS):
        yield _checkpoint_record(row)
    after = 0
    while True:
        rows = await conn.fetch(_ENTRIES_AFTER, after, page_size)
        for row in rows:
            yield _entry_record(row, decode)
        if on_page is not None:
            on_page(len(rows))
        if len(rows) < page_size:
            return
        after = rows[-1][0]


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """What the database says about itself besides the log (not evidence; cross-checks)."""

    ledger_rows: int
    min_position: int | None
    max_position: int | None
    events: int
    state_tree_size: int
    state_root: bytes


async def database_facts(conn: asyncpg.Connection) -> DatabaseFacts:
    row = await conn.fetchrow(
        "SELECT l.n, l.lo, l.hi, (SELECT count(*) FROM es.events) AS events, s.tree_size, s.frontier"
        "  FROM es.sequencer_state s,"
        "       (SELECT count(*) AS n, min(global_position) AS lo, max(global_position) AS hi"
        "          FROM es.ledger) l")
    frontier = Frontier(row["tree_size"], list(row["frontier"]))
    return DatabaseFacts(row["n"], row["lo"], row["hi"], row["events"], row["tree_size"],
                         frontier.root())


def _db_where(record: dict[str, Any]) -> str | None:
    return f"es.checkpoints at size {record['tree_size']}" if record["kind"] == "checkpoint" else None


async def verify_database(conn: asyncpg.Connection, public_keys: Mapping[str, Ed25519PublicKey], *,
                          extra_checkpoints: Iterable[tuple[str, dict[str, Any]]] = (),
                          page_size: int = 5000,
                          on_page: Callable[[int], None] | None = None,
                          workers: int | None = None, dsn: str | None = None,
                          server_settings: Mapping[str, str] | None = None,
                          ) -> tuple[VerifyResult, DatabaseFacts]:
    """Verify the live log in one snapshot; also check the sequencer's own tree head against it.

    With a `dsn` and a large ledger, `workers` processes each read a range of positions from the
    same exported snapshot and check it; the fold stays here.
    """
    # The database must hold every entry any checkpoint ever signed: one signing more is a failure.
    verifier = Verifier(public_keys, beyond_end="fail")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        facts = await database_facts(conn)
        feed_externals(verifier, extra_checkpoints)
        workers = worker_count(workers)
        parallel = (dsn is not None and workers > 1
                    and facts.ledger_rows >= audit_workers.PARALLEL_MIN_ENTRIES)
        if verifier.failure is None and parallel:
            for row in await conn.fetch(_CHECKPOINTS):
                record = _checkpoint_record(row)
                if verifier.feed(record, _db_where(record)) is not None:
                    break
            if verifier.failure is None:
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                assert dsn is not None  # `parallel` needs it
                await _verify_ranges(verifier, dsn, dict(server_settings or {}), snapshot, facts,
                                     workers, on_page)
        elif verifier.failure is None:
            async for record in database_records(conn, page_size=page_size, on_page=on_page):
                if verifier.feed(record, _db_where(record)) is not None:
                    break
    result = verifier.result()
    if result.ok and (facts.state_tree_size, facts.state_root) != (result.entries, result.root):
        result = replace(result, failure=Failure(
            f"the sequencer's tree head is size {facts.state_tree_size}, root "
            f"{facts.state_root.hex()}, but the ledger gives {result.entries} entries, root "
            f"{result.root.hex()}: ledger rows after position {result.entries} were deleted "
            "(or the state was edited)", result.entries + 1))
    return result, facts


async def _verify_ranges(verifier: Verifier, dsn: str, settings: dict[str, str], snapshot: str,
                         facts: DatabaseFacts, workers: int,
                         on_page: Callable[[int], None] | None) -> None:
    if facts.min_position is None or facts.max_position is None:
        return
    lo, hi = facts.min_position, facts.max_position
    step = max(5000, (hi - lo + 1) // (workers * 8) + 1)
    jobs = [(dsn, settings, snapshot, a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]
    loop = asyncio.get_running_loop()
    with process_pool(workers) as pool:
        futures = [loop.run_in_executor(pool, _check_range_job, *job) for job in jobs]
        try:
            for future in futures:
                items = await future
                if fold_items(verifier, items, lambda i: None):
                    break
                if on_page is not None:
                    on_page(len(items))
        finally:
            for future in futures:
                future.cancel()


def _check_range_job(dsn: str, settings: dict[str, str], snapshot: str, lo: int, hi: int
                     ) -> list[Item]:
    """Worker: check ledger positions lo..hi as the exported snapshot saw them."""
    return asyncio.run(_check_range(dsn, settings, snapshot, lo, hi))


async def _check_range(dsn: str, settings: dict[str, str], snapshot: str, lo: int, hi: int
                       ) -> list[Item]:
    conn = await asyncpg.connect(dsn, server_settings=settings or None)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            rows = await conn.fetch(_ENTRIES_BETWEEN, lo, hi)
    finally:
        await conn.close()
    items = []
    for row in rows:
        items.append(check_item(_entry_record(row, _lenient_decode), None))
        if items[-1][0] >= 2:
            break
    return items


async def export_database(conn: asyncpg.Connection, out: Any, *, page_size: int = 5000,
                          on_page: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Write the log to the binary file object `out`; return (entries, checkpoints)."""
    entries = checkpoints = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for record in database_records(conn, page_size=page_size, on_page=on_page,
                                             decode=json.loads):
            if record["kind"] == "entry":
                entries += 1
            else:
                checkpoints += 1
            out.write(canonical_line(record))
    return entries, checkpoints


async def count_ledger(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM es.ledger")
    return count
