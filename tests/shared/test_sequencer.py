"""The sequencer: dense positions, restart, election and takeover, signed checkpoints on disk."""
from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from shared.merkle import leaf_hash, ledger_entry, root_of_leaf_hashes
from shared.messages import NewEvent
from shared.sequencer import NotLeaderError, Sequencer, checkpoint_file_name
from shared.signing import CheckpointSigner, generate_private_key, verify_note
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def event(stream_id: str, n: int = 0) -> NewEvent:
    event_id = uuid.uuid4()
    return NewEvent(stream_id, event_id, "example.Happened", 1, {"n": n, "text": "鄂城区"},
                    {"event_id": str(event_id), "event_type": "example.Happened",
                     "schema_version": 1})


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(generate_private_key(), "lookback.test/ledger")


def sequencer(database: str, signer: CheckpointSigner | None = None, folder=None, **options
              ) -> Sequencer:
    options.setdefault("election_interval", 0.05)
    options.setdefault("poll_interval", 0.01)
    return Sequencer(database, signer, folder, role="lookback_sequencer", **options)


async def ledger_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM es.ledger ORDER BY global_position")


async def sequence_until(seq: Sequencer, tree_size: int, timeout: float = 20.0) -> None:
    """run_once until the tree has `tree_size` entries. Polling, because the transaction-id horizon
    is cluster-wide: another test's open transaction may hold back what is readable for a moment."""
    deadline = time.monotonic() + timeout
    while seq.tree_size < tree_size:
        if time.monotonic() > deadline:
            raise AssertionError(f"sequenced {seq.tree_size} of {tree_size} within {timeout} s")
        if not await seq.run_once():
            await asyncio.sleep(0.02)
    assert seq.tree_size == tree_size


def assert_ledger_consistent(rows, expected_ids=None) -> bytes:
    """Dense from 1, one row per event, every leaf recomputable; return the root."""
    assert [r["global_position"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        entry = ledger_entry(r["global_position"], r["stream_id"], r["stream_version"],
                             r["event_id"], r["event_type"], r["payload_hash"], r["metadata_hash"])
        assert r["leaf_hash"] == leaf_hash(entry)
    if expected_ids is not None:
        assert sorted(r["event_id"] for r in rows) == sorted(expected_ids)
    return root_of_leaf_hashes(r["leaf_hash"] for r in rows)


async def test_concurrent_writers_get_dense_gap_free_positions(database, pg_pool, pg_store):
    seq = sequencer(database, batch_size=7)
    stop = asyncio.Event()
    running = asyncio.create_task(seq.run(stop))
    appended = []

    async def writer(w: int) -> None:
        for i in range(15):
            batch = [event(f"example-w{w}", i)] if i % 3 else [event(f"example-w{w}", i),
                                                                  event(f"example-x{w}", i)]
            await pg_store.append(batch)
            appended.extend(e.event_id for e in batch)

    try:
        await asyncio.gather(*(writer(w) for w in range(6)))
        rows = await eventually(
            lambda: _rows_if(pg_pool, len(appended)), what=f"{len(appended)} sequenced events")
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    root = assert_ledger_consistent(rows, appended)
    state = await pg_pool.fetchrow("SELECT tree_size, last_tx_seq FROM es.sequencer_state")
    assert state["tree_size"] == len(appended)
    assert seq.tree_size == 0  # closed on stop; the state lives in the database
    assert await sequencer(database).lag() == 0
    assert root == root_of_leaf_hashes(r["leaf_hash"] for r in await ledger_rows(pg_pool))


async def _rows_if(pool, count):
    rows = await ledger_rows(pool)
    return rows if len(rows) >= count else None


async def test_a_restarted_sequencer_resumes_the_same_tree(database, pg_pool, pg_store, signer,
                                                           tmp_path):
    first = sequencer(database, signer, tmp_path, checkpoint_every_events=4)
    await pg_store.append([event("example-a", i) for i in range(5)])
    await sequence_until(first, 5)
    root_after_five = first.root()
    await first.close()

    await pg_store.append([event("example-b", i) for i in range(6)])
    second = sequencer(database, signer, tmp_path, checkpoint_every_events=4)
    try:
        await sequence_until(second, 11)
        assert await second.run_once() == 0
        rows = await ledger_rows(pg_pool)
        root = assert_ledger_consistent(rows)
        assert len(rows) == 11 and second.root() == root
        assert root_of_leaf_hashes(r["leaf_hash"] for r in rows[:5]) == root_after_five
        assert [r["stream_id"] for r in rows[5:]] == ["example-b"] * 6
    finally:
        await second.close()


async def test_a_second_sequencer_waits_and_takes_over_when_the_first_dies(database, pg_pool,
                                                                           pg_store):
    first = sequencer(database)
    second = sequencer(database, name="standby")
    await pg_store.append([event("example-a")])
    await sequence_until(first, 1)
    stop = asyncio.Event()
    standby = asyncio.create_task(second.run(stop))
    try:
        await pg_store.append([event("example-a", 2)])
        await asyncio.sleep(0.4)  # several election rounds: the lock is held, so it must wait
        assert not second.is_leader
        assert len(await ledger_rows(pg_pool)) == 1
        with pytest.raises(NotLeaderError):
            await sequencer(database).run_once()

        # The leader's connection dies (as with a crashed process): the server drops its lock.
        await pg_pool.execute("SELECT pg_terminate_backend($1)", first.backend_pid)
        rows = await eventually(lambda: _rows_if(pg_pool, 2), what="the standby to sequence")
        assert second.is_leader
        await pg_store.append([event("example-b")])
        rows = await eventually(lambda: _rows_if(pg_pool, 3), what="the new leader to go on")
        assert_ledger_consistent(rows)
        with pytest.raises(NotLeaderError):  # the old leader reconnects but may not sequence
            await first.run_once()
    finally:
        stop.set()
        await asyncio.wait_for(standby, 10)
        await first.close()


async def test_checkpoints_are_signed_stored_and_written_as_files(database, pg_pool, pg_store,
                                                                  signer, tmp_path):
    seq = sequencer(database, signer, tmp_path, checkpoint_every_events=4, batch_size=3)
    try:
        await pg_store.append([event("example-a", i) for i in range(10)])
        await sequence_until(seq, 10)
    finally:
        await seq.close()
    stored = await pg_pool.fetch("SELECT * FROM es.checkpoints ORDER BY tree_size")
    sizes = [r["tree_size"] for r in stored]
    # Every N = 4 events: signed at the end of a batch once 4 or more entries are unsigned.
    assert sizes and sizes[0] >= 4 and all(b - a >= 4 for a, b in zip(sizes, sizes[1:], strict=False))
    rows = await ledger_rows(pg_pool)
    keys = {signer.key_id: signer.public_key}
    for row in stored:
        size = row["tree_size"]
        note = (tmp_path / checkpoint_file_name(size)).read_text(encoding="utf-8")
        assert note == row["note"]
        checkpoint = verify_note(note, keys)
        assert checkpoint.tree_size == size and checkpoint.root_hash == row["root_hash"]
        assert checkpoint.root_hash == root_of_leaf_hashes(r["leaf_hash"] for r in rows[:size])
        assert row["key_id"] == signer.key_id and row["signature"] == checkpoint.signature


async def test_a_checkpoint_is_also_signed_every_t_seconds(database, pg_pool, pg_store, signer,
                                                          tmp_path):
    clock = [1000.0]
    seq = sequencer(database, signer, tmp_path, checkpoint_every_events=1000,
                    checkpoint_every_seconds=60, clock=lambda: clock[0])
    try:
        await pg_store.append([event("example-a", i) for i in range(2)])
        await sequence_until(seq, 2)
        assert await pg_pool.fetchval("SELECT count(*) FROM es.checkpoints") == 0
        clock[0] += 61  # T seconds with unsigned entries: sign, even with nothing new to sequence
        assert await seq.run_once() == 0
        assert await pg_pool.fetchval("SELECT tree_size FROM es.checkpoints") == 2
        clock[0] += 61  # nothing new since: nothing to sign
        await seq.run_once()
        assert await pg_pool.fetchval("SELECT count(*) FROM es.checkpoints") == 1
    finally:
        await seq.close()
    assert (tmp_path / checkpoint_file_name(2)).is_file()


async def test_the_sequencer_role_may_write_the_ledger_and_service_roles_may_not(database,
                                                                                 pg_store):
    await pg_store.append([event("example-a")])
    seq = sequencer(database)
    try:
        await sequence_until(seq, 1)
        conn = await asyncpg.connect(database, server_settings={"role": "lookback_registry"})
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO es.ledger SELECT 2, stream_id, stream_version, gen_random_uuid(),"
                    " event_type, payload_hash, metadata_hash, leaf_hash, tx_id, tx_seq"
                    " FROM es.ledger")
        finally:
            await conn.close()
    finally:
        await seq.close()


async def test_lag_counts_committed_events_not_yet_sequenced(database, pg_store):
    seq = sequencer(database)
    try:
        await pg_store.append([event("example-a", i) for i in range(3)])
        assert await seq.lag() == 3
        await sequence_until(seq, 3)
        assert await seq.lag() == 0
    finally:
        await seq.close()


async def test_a_new_leader_rewrites_a_checkpoint_file_its_predecessor_did_not_write(
        database, pg_store, signer, tmp_path):
    first = sequencer(database, signer, tmp_path, checkpoint_every_events=1)
    await pg_store.append([event("example-a")])
    await sequence_until(first, 1)
    await first.close()
    path = tmp_path / checkpoint_file_name(1)
    written = path.read_text(encoding="utf-8")
    path.unlink()  # as if the leader died between its commit and its file write
    second = sequencer(database, signer, tmp_path)
    try:
        assert await second.try_acquire()
        assert path.read_text(encoding="utf-8") == written
    finally:
        await second.close()


async def test_readers_are_woken_by_a_notification_after_each_sequenced_batch(database, pg_store):
    listener = await asyncpg.connect(database)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("es_ledger", lambda *args: heard.put_nowait(args[-1]))
    seq = sequencer(database)
    try:
        await pg_store.append([event("example-a", i) for i in range(3)])
        await sequence_until(seq, 3)
        payloads = [await asyncio.wait_for(heard.get(), 5)]
        while payloads[-1] != "3":  # the new tree size, sent once each batch has committed
            payloads.append(await asyncio.wait_for(heard.get(), 5))
        assert [int(p) for p in payloads] == sorted(int(p) for p in payloads)
    finally:
        await seq.close()
        await listener.close()
