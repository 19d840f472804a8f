"""The event store's guarantees, each shown against real PostgreSQL with the failure it prevents."""
from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

import asyncpg
import pytest
from asyncpg.transaction import TransactionState

from shared.errors import StreamPermissionError
from shared.messages import Event, EventRegistry, NewEvent
from shared.sequencer import Sequencer
from shared.store import PostgresEventStore
from tests.support.databases import store_as
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def event(stream_id: str, n: int = 0, *, schema_version: int = 1, payload=None) -> NewEvent:
    event_id = uuid.uuid4()
    return NewEvent(stream_id, event_id, "example.Happened", schema_version,
                    payload if payload is not None else {"n": n},
                    {"event_id": str(event_id), "event_type": "example.Happened",
                     "schema_version": schema_version})


async def close(transaction) -> None:
    """Roll back a transaction a test held open, unless it was committed."""
    if transaction._state is TransactionState.STARTED:
        await transaction.rollback()


# --------------------------------------------------------------------------------------------
# No reader ever skips an event that commits late


async def test_a_late_commit_is_lost_by_a_sequence_cursor_but_not_by_the_horizon(
        database, pg_pool, pg_store):
    await pg_store.append([event("example-early")])
    held = await pg_pool.acquire()
    transaction = held.transaction()
    await transaction.start()
    try:
        # The late writer appends first (so it gets the smaller tx_seq) but does not commit yet.
        late = event("example-late")
        await pg_store.append([late], conn=held)
        on_time = event("example-on-time")
        await pg_store.append([on_time])

        # A naive reader: WHERE tx_seq > last ORDER BY tx_seq, remembering the largest seen.
        naive_seen = [r["event_id"] for r in await pg_pool.fetch(
            "SELECT event_id FROM es.events WHERE tx_seq > 0 ORDER BY tx_seq")]
        naive_cursor = await pg_pool.fetchval("SELECT max(tx_seq) FROM es.events")
        assert on_time.event_id in naive_seen and late.event_id not in naive_seen

        # Ours: nothing at or after the oldest running transaction is readable yet.
        ours = await pg_store.read_committed((0, 0), limit=100)
        assert late.event_id not in {e.event_id for e in ours}
        assert on_time.event_id not in {e.event_id for e in ours}
        await transaction.commit()
    finally:
        await close(transaction)  # never leave it open: the horizon is cluster-wide
        await pg_pool.release(held)

    naive_seen += [r["event_id"] for r in await pg_pool.fetch(
        "SELECT event_id FROM es.events WHERE tx_seq > $1 ORDER BY tx_seq", naive_cursor)]
    assert late.event_id not in naive_seen, "the sequence cursor had already passed it"

    async def all_read():
        seen, cursor = [], (0, 0)
        while page := await pg_store.read_committed(cursor, limit=100):
            seen += [e.event_id for e in page]
            cursor = (page[-1].tx_id, page[-1].tx_seq)
        return seen if late.event_id in seen and on_time.event_id in seen else None

    seen = await eventually(all_read, what="the late event to become readable")
    assert len(seen) == len(set(seen)) == 3


async def test_the_sequencer_never_skips_a_late_commit(database, pg_pool, pg_store):
    sequencer = Sequencer(database, role="lookback_sequencer")
    held = await pg_pool.acquire()
    transaction = held.transaction()
    await transaction.start()
    try:
        late = event("example-late")
        await pg_store.append([late], conn=held)
        for i in range(3):
            await pg_store.append([event("example-other", i)])
        # Whatever it reads now, it cannot read past the open transaction.
        await sequencer.run_once()
        sequenced = {r["event_id"] for r in await pg_pool.fetch("SELECT event_id FROM es.ledger")}
        assert late.event_id not in sequenced and len(sequenced) == 0
        await transaction.commit()
    finally:
        await close(transaction)
        await pg_pool.release(held)

    async def everything_sequenced():
        await sequencer.run_once()
        return await pg_pool.fetchval("SELECT count(*) FROM es.ledger") == 4
    try:
        await eventually(everything_sequenced, what="all four events in the ledger")
        positions = await pg_pool.fetch(
            "SELECT global_position, event_id FROM es.ledger ORDER BY global_position")
        assert [p["global_position"] for p in positions] == [1, 2, 3, 4]
        assert positions[0]["event_id"] == late.event_id  # committed last, ordered by its xid
    finally:
        await sequencer.close()


# --------------------------------------------------------------------------------------------
# Append-only, for everyone


async def _ledger_with_one_event(database: str, pg_store: PostgresEventStore) -> None:
    await pg_store.append([event("example-a")])
    sequencer = Sequencer(database)
    try:
        async def done():
            await sequencer.run_once()
            return sequencer.tree_size == 1
        await eventually(done, what="the event to be sequenced")
    finally:
        await sequencer.close()


@pytest.mark.parametrize("table", ["events", "ledger"])
@pytest.mark.parametrize("statement", [
    "UPDATE es.{table} SET stream_version = stream_version",
    "DELETE FROM es.{table}",
    "TRUNCATE es.{table} CASCADE",
])
async def test_rows_cannot_be_updated_deleted_or_truncated_even_by_the_superuser(
        database, pg_pool, pg_store, table, statement):
    await _ledger_with_one_event(database, pg_store)
    assert await pg_pool.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    with pytest.raises(asyncpg.PostgresError, match="append-only") as refused:
        await pg_pool.execute(statement.format(table=table))
    assert refused.value.sqlstate == "LB010"
    assert await pg_pool.fetchval(f"SELECT count(*) FROM es.{table}") == 1


# --------------------------------------------------------------------------------------------
# Each service role writes only its own stream categories


async def test_the_registry_role_cannot_write_a_problem_stream_but_can_write_a_project_one(database):
    async with store_as(database, "rectification") as rectification, \
            store_as(database, "registry") as store:
        await rectification.append([event("problem-existing")])
        with pytest.raises(StreamPermissionError):
            await store.append([event("problem-new")])
        with pytest.raises(StreamPermissionError):
            await store.append([event("problem-existing")])
        done = await store.append([event("project-1")])
        assert [(a.stream_id, a.stream_version) for a in done] == [("project-1", 1)]
        assert await store.stream_version("problem-existing") == 1  # reading is allowed
        assert await store.stream_version("problem-new") == 0


# --------------------------------------------------------------------------------------------
# Writers to different streams never wait for each other


async def test_writers_to_different_streams_do_not_block_each_other(database, pg_pool, pg_store):
    await pg_store.append([event("example-a"), event("example-b")])
    held = await pg_pool.acquire()
    transaction = held.transaction()
    await transaction.start()
    try:
        await pg_store.append([event("example-a", 1)], conn=held)  # holds stream a's row lock
        other = await asyncio.wait_for(pg_store.append([event("example-b", 1)]), 5)
        assert other[0].stream_version == 2
        # The control: a second writer of the *same* stream does wait for the first.
        same = asyncio.create_task(pg_store.append([event("example-a", 2)]))
        done, _ = await asyncio.wait({same}, timeout=0.5)
        assert not done, "a writer of the same stream should wait for the row lock"
        await transaction.commit()
        assert (await asyncio.wait_for(same, 5))[0].stream_version == 3
    finally:
        await close(transaction)
        await pg_pool.release(held)


# --------------------------------------------------------------------------------------------
# Old events still load: schema versions have upcasters


class PlaceRegistered(Event):
    type_name: ClassVar[str] = "example.PlaceRegistered"
    schema_version: ClassVar[int] = 2
    name: str
    district: str


async def test_an_event_stored_at_an_old_schema_version_loads_through_its_upcaster(pg_store):
    old = NewEvent("example-place", uuid.uuid4(), PlaceRegistered.type_name, 1,
                   {"name": "幸福里养老驿站"},  # v1 had no district
                   {"event_id": "x", "event_type": PlaceRegistered.type_name, "schema_version": 1})
    await pg_store.append([old])
    recorded = (await pg_store.read_stream("example-place"))[0]
    assert recorded.schema_version == 1

    without = EventRegistry()
    without.register(PlaceRegistered)
    with pytest.raises(KeyError, match="no upcaster"):
        without.load_recorded(recorded)

    registry = EventRegistry()
    registry.register(PlaceRegistered)

    @registry.upcaster(PlaceRegistered.type_name, 1)
    def add_district(payload: dict) -> dict:
        return {**payload, "district": "unknown"}

    loaded = registry.load_recorded(recorded)
    assert loaded == PlaceRegistered(name="幸福里养老驿站", district="unknown")


# --------------------------------------------------------------------------------------------
# One event (es.append_one): the same idempotency as es.append


async def test_a_single_event_retried_returns_its_original_position_even_concurrently(pg_store):
    first = event("example-one")
    original = await pg_store.append([first], {"example-one": 0})
    await pg_store.append([event("example-one", 1)])
    for expected in (0, -1):  # the stream moved on, yet a retry is not a conflict
        assert await pg_store.append([first], {"example-one": expected}) == original
    assert await pg_store.stream_version("example-one") == 2

    twin = event("example-twin")
    both = await asyncio.gather(*(pg_store.append([twin], {"example-twin": 0}) for _ in range(2)))
    assert both[0] == both[1] and both[0][0].stream_version == 1
    assert await pg_store.stream_version("example-twin") == 1
