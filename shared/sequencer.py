"""The sequencer: one elected process gives committed events a dense global order and a Merkle tree.

Election is a session-level advisory lock held on the sequencer's own direct connection; the same
connection does all the sequencing writes, so a sequencer whose connection dies can write nothing
more, and a waiting instance (polling `pg_try_advisory_lock`) takes over. `es.sequence_batch` also
checks the tree size it expects, so even a split brain (e.g. a pooler between us and the server)
fails instead of writing a position twice.

Each batch reads `es.read_committed` (the transaction-id horizon: a transaction that commits late is
never passed over), numbers the rows after the current tree size, computes their RFC 6962 leaf
hashes, extends the frontier, and stores rows, tree head and cursor in one call. Every N events or T
seconds it signs a checkpoint, stores it, and writes it as a file outside the database.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import asyncpg
import structlog

from shared.errors import LookbackError
from shared.merkle import Frontier, leaf_hash, ledger_entry
from shared.signing import Checkpoint, CheckpointSigner
from shared.store import login_dsn

log = structlog.get_logger("lookback.sequencer")

SEQUENCER_LOCK_KEY = 0x4C4B5351  # "LKSQ"; advisory locks are per database, so one leader per store
CHECKPOINT_FILE_PATTERN = "checkpoint-*.txt"

_READ_BATCH = (
    "SELECT stream_id, stream_version, event_id, event_type, payload_hash, metadata_hash, tx_id, tx_seq"
    " FROM es.read_committed($1::xid8, $2, $3)")
_SEQUENCE_BATCH = (
    "SELECT es.sequence_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
_STANDALONE_CHECKPOINT = """
    INSERT INTO es.checkpoints (tree_size, root_hash, key_id, signature, signed_at, note)
    SELECT $1, $2, $3, $4, clock_timestamp(), $5
     WHERE EXISTS (SELECT 1 FROM es.sequencer_state WHERE tree_size = $1)
    ON CONFLICT (tree_size) DO NOTHING
    RETURNING tree_size"""
_LAG = """
    SELECT count(*) FROM es.events e, es.sequencer_state s
     WHERE (e.tx_id, e.tx_seq) > (s.last_tx_id, s.last_tx_seq)"""
_LAG_SECONDS = """
    SELECT coalesce(extract(epoch FROM clock_timestamp() - min(e.recorded_at)), 0)::float8
      FROM es.events e, es.sequencer_state s
     WHERE (e.tx_id, e.tx_seq) > (s.last_tx_id, s.last_tx_seq)"""

_CONNECTION_LOST = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                    asyncpg.exceptions.InterfaceError, asyncpg.exceptions.AdminShutdownError,
                    asyncpg.exceptions.CannotConnectNowError, asyncio.TimeoutError)


class NotLeaderError(LookbackError):
    """Another sequencer holds the lock; this one may not sequence."""


@dataclass
class _State:
    last_tx_id: int
    last_tx_seq: int
    frontier: Frontier
    checkpoint_size: int
    checkpoint_at: float


async def unsequenced_count(conn: asyncpg.Connection) -> int:
    """Events committed (and visible) but not yet in the ledger."""
    return await conn.fetchval(_LAG)


async def unsequenced_age_seconds(conn: asyncpg.Connection) -> float:
    """Age of the oldest event not yet in the ledger (0 when the sequencer has caught up)."""
    return await conn.fetchval(_LAG_SECONDS)


def checkpoint_file_name(tree_size: int) -> str:
    return f"checkpoint-{tree_size:012d}.txt"


def write_checkpoint_file(folder: Path, checkpoint: Checkpoint) -> Path:
    """Write the signed note atomically (temp file, fsync, rename); the folder lives off the DB."""
    return _write_note(folder, checkpoint.tree_size, checkpoint.note)


def _write_note(folder: Path, tree_size: int, note: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_file_name(tree_size)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(note)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


class Sequencer:
    """Elect, then sequence committed events into `es.ledger` and sign checkpoints.

    `dsn` is a direct connection string (not through a transaction-mode pooler: session advisory
    locks need a session). `role` is the login role to use (`lookback_sequencer`, which may
    write the ledger and nothing else), with its `password` if the server asks for one.
    """

    def __init__(self, dsn: str, signer: CheckpointSigner | None = None,
                 checkpoint_dir: str | Path | None = None, *, checkpoint_every_events: int = 1000,
                 checkpoint_every_seconds: float = 60.0, batch_size: int = 2000,
                 role: str | None = None, password: str | None = None,
                 poll_interval: float = 0.05,
                 election_interval: float = 0.5, max_batches_per_run: int = 50,
                 lock_key: int = SEQUENCER_LOCK_KEY, clock: Callable[[], float] = time.monotonic,
                 name: str = "sequencer", witness: Any = None) -> None:
        if batch_size < 1 or checkpoint_every_events < 1:
            raise ValueError("batch_size and checkpoint_every_events must be at least 1")
        self.dsn = dsn
        self.signer = signer
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every_events = checkpoint_every_events
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.batch_size = batch_size
        self.role, self.password = role, password
        self.poll_interval = poll_interval
        self.election_interval = election_interval
        self.max_batches_per_run = max_batches_per_run
        self.lock_key = lock_key
        self.clock = clock
        self.name = name
        # A WitnessShipper (shared/witness.py): ships each signed checkpoint off the machine.
        self.witness = witness
        if witness is not None:
            witness.active = lambda: self.is_leader
        self.is_leader = False
        self.last_checkpoint: Checkpoint | None = None
        self._conn: asyncpg.Connection | None = None
        self._state: _State | None = None

    # -- connection and election -------------------------------------------------------------

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            settings = {"application_name": f"lookback:{self.name}"}
            dsn = login_dsn(self.dsn, self.role, self.password) if self.role else self.dsn
            self._conn = await asyncpg.connect(dsn, server_settings=settings, timeout=10)
            self.is_leader = False
        return self._conn

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock connection (tests terminate it to simulate a crash)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def try_acquire(self) -> bool:
        """Become the leader if nobody else is; True if this instance leads now."""
        conn = await self._connection()
        if self.is_leader:
            return True
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
            self.is_leader = True
            await self._load_state(conn)
            log.info("sequencer_elected", name=self.name, tree_size=self._state.frontier.size)
        return self.is_leader

    async def wait_for_leadership(self, stop: asyncio.Event) -> bool:
        """Poll for the lock until it is ours (True) or `stop` is set (False)."""
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    return True
            except _CONNECTION_LOST as exc:
                log.warning("sequencer_connection_lost", name=self.name, error=str(exc))
                await self._drop_connection()
            await _wait(stop, self.election_interval)
        return False

    async def _load_state(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT last_tx_id, last_tx_seq, tree_size, frontier FROM es.sequencer_state")
        latest = await conn.fetchrow(
            "SELECT tree_size, note FROM es.checkpoints ORDER BY tree_size DESC LIMIT 1")
        self._state = _State(row["last_tx_id"], row["last_tx_seq"],
                             Frontier(row["tree_size"], list(row["frontier"])),
                             latest["tree_size"] if latest else 0, self.clock())
        # A leader that died between its commit and its file write left the file missing: the
        # note is signed, so copying it from the database is as good as the original.
        if latest is not None and latest["note"] and self.checkpoint_dir is not None:
            path = self.checkpoint_dir / checkpoint_file_name(latest["tree_size"])
            if not path.exists():
                try:
                    _write_note(self.checkpoint_dir, latest["tree_size"], latest["note"])
                except OSError as exc:
                    log.error("checkpoint_file_not_written", folder=str(self.checkpoint_dir),
                              tree_size=latest["tree_size"], error=str(exc))

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self.is_leader = False
        self._state = None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self) -> None:
        """Release the lock by closing the connection (what a crash does, too)."""
        conn, self._conn = self._conn, None
        self.is_leader = False
        self._state = None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (asyncio.TimeoutError, *_CONNECTION_LOST):
                conn.terminate()

    # -- sequencing ----------------------------------------------------------------------------

    @property
    def tree_size(self) -> int:
        return self._state.frontier.size if self._state else 0

    def root(self) -> bytes:
        if self._state is None:
            raise NotLeaderError("no state loaded: not the leader")
        return self._state.frontier.root()

    async def run_once(self) -> int:
        """Sequence what is committed below the horizon now (and sign if due); return the count."""
        if not await self.try_acquire():
            raise NotLeaderError("another sequencer holds the lock")
        total = 0
        for _ in range(self.max_batches_per_run):
            count = await self._sequence_batch()
            total += count
            if count < self.batch_size:
                break
        if self._checkpoint_due(0):
            await self.checkpoint()
        return total

    def _checkpoint_due(self, new_events: int) -> bool:
        state = self._state
        if self.signer is None or state is None:
            return False
        pending = state.frontier.size + new_events - state.checkpoint_size
        if pending <= 0:
            return False
        return (pending >= self.checkpoint_every_events
                or self.clock() - state.checkpoint_at >= self.checkpoint_every_seconds)

    async def _sequence_batch(self) -> int:
        conn = self._conn
        state = self._state
        assert conn is not None and state is not None
        rows = await conn.fetch(_READ_BATCH, state.last_tx_id, state.last_tx_seq, self.batch_size)
        if not rows:
            return 0
        frontier = state.frontier.copy()
        base = frontier.size
        stream_ids, versions, event_ids, types, phashes, mhashes, leaves, tx_ids, tx_seqs = (
            [] for _ in range(9))
        for offset, row in enumerate(rows, start=1):
            stream_id, version, event_id, event_type, phash, mhash, tx_id, tx_seq = row
            leaf = leaf_hash(ledger_entry(base + offset, stream_id, version, event_id, event_type,
                                          phash, mhash))
            frontier.append(leaf)
            stream_ids.append(stream_id)
            versions.append(version)
            event_ids.append(event_id)
            types.append(event_type)
            phashes.append(phash)
            mhashes.append(mhash)
            leaves.append(leaf)
            tx_ids.append(tx_id)
            tx_seqs.append(tx_seq)
        checkpoint = None
        if self._checkpoint_due(len(rows)):
            checkpoint = self.signer.sign(frontier.size, frontier.root())
        try:
            await conn.fetchval(
                _SEQUENCE_BATCH, base, stream_ids, versions, event_ids, types, phashes, mhashes, leaves,
                tx_ids, tx_seqs, frontier.nodes,
                checkpoint.root_hash if checkpoint else None,
                checkpoint.key_id if checkpoint else None,
                checkpoint.signature if checkpoint else None,
                checkpoint.note if checkpoint else None)
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == "LB020":
                raise NotLeaderError(str(exc)) from exc
            raise
        state.frontier = frontier
        state.last_tx_id, state.last_tx_seq = tx_ids[-1], tx_seqs[-1]
        if checkpoint is not None:
            self._checkpoint_committed(checkpoint)
        return len(rows)

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the current tree head now, if it grew since the last checkpoint."""
        state = self._state
        if self.signer is None or state is None or state.frontier.size <= state.checkpoint_size:
            return None
        checkpoint = self.signer.sign(state.frontier.size, state.frontier.root())
        stored = await self._conn.fetchval(
            _STANDALONE_CHECKPOINT, checkpoint.tree_size, checkpoint.root_hash, checkpoint.key_id,
            checkpoint.signature, checkpoint.note)
        if stored is None:
            raise NotLeaderError("the tree moved on under this sequencer, or it was signed already")
        self._checkpoint_committed(checkpoint)
        return checkpoint

    def _checkpoint_committed(self, checkpoint: Checkpoint) -> None:
        self._state.checkpoint_size = checkpoint.tree_size
        self._state.checkpoint_at = self.clock()
        self.last_checkpoint = checkpoint
        log.info("checkpoint_signed", tree_size=checkpoint.tree_size,
                 root=checkpoint.root_hash.hex(), key_id=checkpoint.key_id)
        if self.witness is not None:
            self.witness.wake()
        if self.checkpoint_dir is not None:
            try:
                write_checkpoint_file(self.checkpoint_dir, checkpoint)
            except OSError as exc:  # the database copy stands; the next checkpoint tries again
                log.error("checkpoint_file_not_written", folder=str(self.checkpoint_dir),
                          tree_size=checkpoint.tree_size, error=str(exc))

    async def run(self, stop: asyncio.Event) -> None:
        """Lead or wait to lead; sequence until `stop` is set; sign what is pending on the way out."""
        witness_stop = asyncio.Event()
        witnessing = (asyncio.create_task(self.witness.run(witness_stop), name="witness")
                      if self.witness is not None else None)
        try:
            while not stop.is_set():
                if not await self.wait_for_leadership(stop):
                    break
                try:
                    count = await self.run_once()
                except (NotLeaderError, *_CONNECTION_LOST) as exc:
                    log.warning("sequencer_lost_leadership", name=self.name, error=str(exc))
                    await self._drop_connection()
                    await _wait(stop, self.election_interval)
                    continue
                if count == 0:
                    await _wait(stop, self.poll_interval)
            if self.is_leader:
                try:
                    await self.run_once()
                    await self.checkpoint()
                except (NotLeaderError, *_CONNECTION_LOST):
                    pass
        finally:
            if witnessing is not None:
                # While still the leader, the last checkpoint gets a bounded chance to leave the
                # machine; what does not make it is shipped by the next leader.
                if self.is_leader and self.last_checkpoint is not None:
                    await self.witness.caught_up(self.last_checkpoint.tree_size, timeout=5.0)
                witness_stop.set()
                try:
                    await asyncio.wait_for(witnessing, 10)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    witnessing.cancel()
            await self.close()

    async def lag(self) -> int:
        """Events appended (committed) but not yet sequenced.

        On a connection of its own: the lock connection is busy sequencing, and a second query on
        it while a batch runs fails ("another operation is in progress") and costs the leadership.
        """
        dsn = login_dsn(self.dsn, self.role, self.password) if self.role else self.dsn
        conn = await asyncpg.connect(dsn, server_settings={"application_name": "lookback:lag"})
        try:
            return await unsequenced_count(conn)
        finally:
            await conn.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
