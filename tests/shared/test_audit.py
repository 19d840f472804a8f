"""`lookback audit export / verify` against a real database, clean and tampered with."""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

import shared.audit_db as audit_db
import shared.audit_file as audit_file
import shared.audit_workers as audit_workers
from tests.faults import eventually
from shared.audit_cli import cli
from shared.canonical import canonical_json, sha256
from shared.merkle import Frontier, leaf_hash, ledger_entry
from shared.messages import NewEvent
from shared.sequencer import Sequencer
from shared.signing import (
    CheckpointSigner,
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_to_text,
    public_key_to_text,
    public_keys_by_id,
)

pytestmark = pytest.mark.integration

EVENTS = 12
CHECKPOINT_EVERY = 5


def event(stream_id: str, n: int) -> NewEvent:
    event_id = uuid.uuid4()
    return NewEvent(stream_id, event_id, "example.Happened", 1,
                    {"n": n, "text": f"第{n}项\t\"整改\"\x01", "amount": str(n * 100)},
                    {"event_id": str(event_id), "event_type": "example.Happened",
                     "schema_version": 1, "actor": {"id": "u1", "name": "张三"}})


@dataclass
class Log:
    dsn: str
    public_key: str
    checkpoint_dir: Path
    root: str
    private_key: str = ""  # base64 seed, for tests that sign more on the same log


@pytest.fixture
async def log(database, pg_store, tmp_path) -> Log:
    signer = CheckpointSigner(generate_private_key(), "lookback.test/ledger")
    folder = tmp_path / "checkpoints"
    for n in range(EVENTS):
        await pg_store.append([event(f"example-{n % 3}", n)])
    # Sequence only once every event is past the horizon (shared by the whole server: another
    # test's open transaction holds it back), so checkpoints fall at exactly 5, 10, … entries.
    await eventually(lambda: _all_visible(pg_store), timeout=60, what="every event committed")
    sequencer = Sequencer(database, signer, folder, checkpoint_every_events=CHECKPOINT_EVERY,
                          batch_size=CHECKPOINT_EVERY, role="lookback_sequencer")
    deadline = time.monotonic() + 20
    try:
        while sequencer.tree_size < EVENTS:  # polling: the horizon is shared with other tests
            assert time.monotonic() < deadline, "the events were not sequenced in time"
            if not await sequencer.run_once():
                await asyncio.sleep(0.02)
        await sequencer.checkpoint()
        root = sequencer.root().hex()
    finally:
        await sequencer.close()
    return Log(database, public_key_to_text(signer.public_key), folder, root,
               private_key_to_text(signer.private_key))


async def _all_visible(store) -> bool:
    return len(await store.read_committed((0, 0), limit=EVENTS + 1)) == EVENTS


async def lookback(*args: str):
    """Run the CLI in a thread (it runs its own event loop, as from a shell)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, [str(a) for a in args])


async def tamper(dsn: str, *statements: str) -> None:
    """What a superuser can do: switch the append-only triggers off, edit, switch them on."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE es.events DISABLE TRIGGER USER;"
                               "ALTER TABLE es.ledger DISABLE TRIGGER USER;"
                               "ALTER TABLE es.checkpoints DISABLE TRIGGER USER")
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("ALTER TABLE es.events ENABLE TRIGGER USER;"
                               "ALTER TABLE es.ledger ENABLE TRIGGER USER;"
                               "ALTER TABLE es.checkpoints ENABLE TRIGGER USER")
    finally:
        await conn.close()


def event_at(position: int) -> str:
    return f"(SELECT event_id FROM es.ledger WHERE global_position = {position})"


async def verify_db(log: Log, *extra: str):
    return await lookback("verify", "--database-url", log.dsn, "--public-key", log.public_key,
                          "--no-progress", *extra)


async def test_a_clean_log_verifies_from_the_database_and_from_its_export(log, tmp_path):
    ok = f"OK {EVENTS} events, root {log.root}"
    result = await verify_db(log, "--checkpoint-dir", log.checkpoint_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ok
    as_auditor = await verify_db(log, "--role", "lookback_auditor")
    assert as_auditor.exit_code == 0 and as_auditor.stdout.startswith(ok)

    export = tmp_path / "log.jsonl"
    result = await lookback("export", "--database-url", log.dsn, "-o", export, "--no-progress")
    assert result.exit_code == 0, result.output
    checkpoints = len(list(log.checkpoint_dir.glob("checkpoint-*.txt")))
    lines = export.read_bytes().splitlines()
    assert len(lines) == EVENTS + checkpoints
    result = await lookback("verify", export, "--public-key", log.public_key,
                            "--checkpoint-dir", log.checkpoint_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ok


async def test_a_payload_edited_by_a_superuser_is_named_by_its_position(log, tmp_path):
    await tamper(log.dsn, "UPDATE es.events SET payload = payload || '{\"amount\": \"99900\"}'"
                          f" WHERE event_id = {event_at(7)}")
    result = await verify_db(log)
    assert result.exit_code == 1
    assert re.match(r"FAIL position 7: the payload does not match its hash", result.stdout)

    export = tmp_path / "log.jsonl"
    assert (await lookback("export", "--database-url", log.dsn, "-o", export,
                           "--no-progress")).exit_code == 0
    from_file = await lookback("verify", export, "--public-key", log.public_key)
    assert from_file.exit_code == 1 and from_file.stdout.startswith("FAIL position 7 (line ")


async def test_a_deleted_ledger_row_is_reported_missing(log):
    await tamper(log.dsn, "DELETE FROM es.ledger WHERE global_position = 5")
    result = await verify_db(log)
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "FAIL position 5: position 5 is missing here (the next entry is at 6): a ledger row was "
        "deleted, or entries are out of order")


async def test_deleting_the_last_ledger_rows_is_caught_by_the_signed_checkpoint(log):
    await tamper(log.dsn, f"DELETE FROM es.ledger WHERE global_position > {EVENTS - 2}")
    result = await verify_db(log)
    assert result.exit_code == 1
    assert f"checkpoint signs tree size {EVENTS}, but the log ends at {EVENTS - 2}" in result.stdout


async def test_a_deleted_event_row_is_reported(log):
    await tamper(log.dsn, f"DELETE FROM es.events WHERE event_id = {event_at(4)}")
    result = await verify_db(log)
    assert result.exit_code == 1
    assert re.match(r"FAIL position 4: event [0-9a-f-]{36} is missing from the events table",
                    result.stdout)


async def test_an_edited_schema_version_column_is_caught_through_the_metadata(log):
    await tamper(log.dsn, f"UPDATE es.events SET schema_version = 2 WHERE event_id = {event_at(9)}")
    result = await verify_db(log)
    assert result.exit_code == 1 and result.stdout.startswith("FAIL position 9: the event's "
                                                              "schema_version column 2 differs")


async def test_a_stored_float_is_reported_not_crashed_on(log):
    await tamper(log.dsn, "UPDATE es.events SET payload = payload || '{\"n\": 1.5}'"
                          f" WHERE event_id = {event_at(2)}")
    result = await verify_db(log)
    assert result.exit_code == 1 and result.stdout.startswith("FAIL position 2:")
    assert "non-integer number" in result.stdout


async def rewrite_consistently(log: Log, position: int, also_hide: bool) -> None:
    """The strongest attacker inside the database: edit a payload and recompute every hash the
    database holds (event, ledger, leaf); optionally also drop the checkpoints and recompute the
    sequencer's tree head. Only a signature, or a copy outside the database, can catch this."""
    conn = await asyncpg.connect(log.dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT payload::text AS p FROM es.events WHERE event_id = {event_at(position)}")
        payload = json.loads(row["p"]) | {"amount": "1"}
        new_hash = sha256(canonical_json(payload))
        ledger = await conn.fetchrow(
            f"SELECT * FROM es.ledger WHERE global_position = {position}")
        new_leaf = leaf_hash(ledger_entry(position, ledger["stream_id"], ledger["stream_version"],
                                          ledger["event_id"], ledger["event_type"], new_hash,
                                          ledger["metadata_hash"]))
    finally:
        await conn.close()
    statements = [
        f"UPDATE es.events SET payload = '{json.dumps(payload, ensure_ascii=False)}'::jsonb,"
        f" payload_hash = '\\x{new_hash.hex()}' WHERE event_id = '{ledger['event_id']}'",
        f"UPDATE es.ledger SET payload_hash = '\\x{new_hash.hex()}', leaf_hash = '\\x{new_leaf.hex()}'"
        f" WHERE global_position = {position}"]
    if also_hide:
        statements.append("DELETE FROM es.checkpoints")
    await tamper(log.dsn, *statements)
    if also_hide:
        conn = await asyncpg.connect(log.dsn)
        try:
            frontier = Frontier()
            for r in await conn.fetch("SELECT leaf_hash FROM es.ledger ORDER BY global_position"):
                frontier.append(r["leaf_hash"])
            await conn.execute("UPDATE es.sequencer_state SET frontier = $1", frontier.nodes)
        finally:
            await conn.close()


async def test_a_consistent_rewrite_is_caught_by_the_signed_root(log):
    conn = await asyncpg.connect(log.dsn)
    try:  # where the first signature covering position 3 is (batches may split differently)
        signed = await conn.fetchval("SELECT min(tree_size) FROM es.checkpoints WHERE tree_size >= 3")
    finally:
        await conn.close()
    await rewrite_consistently(log, 3, also_hide=False)
    result = await verify_db(log)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"FAIL position {signed}: the tree of the first {signed} "
                                    "entries has root")
    assert f"es.checkpoints at size {signed}" in result.stdout


async def test_checkpoint_files_outside_the_database_catch_what_the_database_no_longer_can(log):
    await rewrite_consistently(log, 3, also_hide=True)
    inside_only = await verify_db(log)
    assert inside_only.exit_code == 0  # the database alone now looks consistent...
    with_files = await verify_db(log, "--checkpoint-dir", log.checkpoint_dir)
    assert with_files.exit_code == 1  # ...but the signed copies that left it do not agree
    assert "checkpoint-0000000000" in with_files.stdout and "has root" in with_files.stdout


async def test_verify_refuses_checkpoints_signed_by_another_key(log):
    other = public_key_to_text(generate_private_key().public_key())
    result = await lookback("verify", "--database-url", log.dsn, "--public-key", other,
                            "--no-progress")
    assert result.exit_code == 1 and "not among the given public keys" in result.stdout


async def test_worker_processes_find_the_same_result_and_the_same_first_failure(log, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setattr(audit_workers, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(audit_workers, "PARALLEL_MIN_ENTRIES", 0)
    keys = public_keys_by_id([load_public_key(log.public_key)])

    async def both(path: Path):
        conn = await asyncpg.connect(log.dsn)
        try:
            one, _ = await audit_db.verify_database(conn, keys, workers=1)
            many, _ = await audit_db.verify_database(conn, keys, workers=2, dsn=log.dsn)
        finally:
            await conn.close()
        with open(path, "wb") as out:
            conn = await asyncpg.connect(log.dsn)
            try:
                await audit_db.export_database(conn, out)
            finally:
                await conn.close()
        file_one = audit_file.verify_file(path, keys, workers=1)
        file_many = await asyncio.to_thread(audit_file.verify_file, path, keys, workers=2)
        return one, many, file_one, file_many

    one, many, file_one, file_many = await both(tmp_path / "clean.jsonl")
    assert one.ok and one == many and file_one == file_many and file_one.root == one.root
    await tamper(log.dsn, "DELETE FROM es.ledger WHERE global_position = 8",
                 f"UPDATE es.events SET payload = '{{}}' WHERE event_id = {event_at(10)}")
    one, many, file_one, file_many = await both(tmp_path / "tampered.jsonl")
    assert one.failure == many.failure and one.failure.position == 8
    assert file_one.failure == file_many.failure and file_one.failure.position == 8


async def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    path = tmp_path / "checkpoint.key"
    result = await lookback("keygen", "-o", path)
    assert result.exit_code == 0, result.output
    assert os.stat(path).st_mode & 0o777 == 0o600
    public = re.search(r"public key:\s+(\S+)", result.stdout).group(1)
    assert public_key_to_text(load_private_key(path.read_text()).public_key()) == public
    assert (await lookback("keygen", "-o", path)).exit_code != 0  # never overwrites a key
