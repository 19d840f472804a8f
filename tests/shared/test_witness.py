"""Witnessed checkpoints: shipped off the machine as they are signed (a folder on other storage and
a git repository), retried until acknowledged, and what catches a database rewritten afterwards."""
from __future__ import annotations

import asyncio
import subprocess
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from shared.sequencer import Sequencer, checkpoint_file_name
from shared.signing import CheckpointSigner, generate_private_key, public_key_to_text
from shared.witness import FolderWitness, GitWitness, WitnessConflict, WitnessShipper
from tests.faults import eventually
from tests.shared.test_audit import Log, event, lookback, rewrite_consistently

pytestmark = pytest.mark.integration


def bare_repository(path: Path) -> str:
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return str(path)


def clone(remote: str, path: Path) -> Path:
    subprocess.run(["git", "clone", "-q", remote, str(path)], check=True)
    return path


@asynccontextmanager
async def sequencing(dsn: str, shipper: WitnessShipper, signer: CheckpointSigner, folder: Path):
    sequencer = Sequencer(dsn, signer, folder, checkpoint_every_events=4, batch_size=4,
                          checkpoint_every_seconds=3600, role="lookback_sequencer",
                          poll_interval=0.02, witness=shipper)
    stop = asyncio.Event()
    task = asyncio.create_task(sequencer.run(stop))
    try:
        yield sequencer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def gauge_and_registry() -> tuple[Gauge, CollectorRegistry]:
    registry = CollectorRegistry()
    return Gauge("lookback_witness_tree_size", "", ["target"], registry=registry), registry


async def test_checkpoints_reach_both_witnesses_and_a_rewrite_is_caught_against_them(
        database, pg_store, tmp_path):
    signer = CheckpointSigner(generate_private_key(), "lookback.test/ledger")
    remote = bare_repository(tmp_path / "witness.git")
    folder_target = FolderWitness(tmp_path / "other-storage")
    git_target = GitWitness(remote, tmp_path / "clone")
    gauge, registry = gauge_and_registry()
    shipper = WitnessShipper(database, [folder_target, git_target], role="lookback_sequencer",
                             gauge=gauge, poll_interval=0.1)
    assert b"lookback_witness_tree_size{" not in generate_latest(registry)  # absent, not 0
    for n in range(12):
        await pg_store.append([event(f"example-{n % 3}", n)])
    async with sequencing(database, shipper, signer, tmp_path / "local") as sequencer:
        await eventually(lambda: sequencer.tree_size == 12, what="sequenced")
        await eventually(lambda: all(shipper.acknowledged.get(t.name) == 12
                                     for t in (folder_target, git_target)), what="witnessed")
    metrics = generate_latest(registry).decode()
    assert f'lookback_witness_tree_size{{target="{folder_target.name}"}} 12.0' in metrics
    assert f'lookback_witness_tree_size{{target="{git_target.name}"}} 12.0' in metrics
    witness_clone = clone(remote, tmp_path / "auditor-clone")
    assert (witness_clone / checkpoint_file_name(12)).read_text() == (
        tmp_path / "other-storage" / checkpoint_file_name(12)).read_text()

    log = Log(database, public_key_to_text(signer.public_key), tmp_path / "local", "")
    await rewrite_consistently(log, 3, also_hide=True)  # as superuser, hashes and tree head redone
    base = ["verify", "--database-url", database, "--public-key", log.public_key, "--no-progress"]
    assert (await lookback(*base)).exit_code == 0  # the database alone looks consistent
    for witness_copy in (tmp_path / "other-storage", witness_clone):
        result = await lookback(*base, "--checkpoint-dir", witness_copy)
        assert result.exit_code == 1, result.output
        assert result.stdout.startswith("FAIL position 4: the tree of the first 4 entries has root")
        assert "the checkpoint (checkpoint-000000000004.txt) signed" in result.stdout


async def test_a_witness_that_cannot_store_is_retried_until_it_acknowledges(database, pg_store,
                                                                             tmp_path):
    signer = CheckpointSigner(generate_private_key(), "lookback.test/ledger")
    blocked = tmp_path / "mount"
    blocked.write_text("not a folder yet")  # the storage is not there: every write fails
    target = FolderWitness(blocked)
    shipper = WitnessShipper(database, [target], role="lookback_sequencer", poll_interval=0.1,
                             backoff=(0.05,))
    for n in range(4):
        await pg_store.append([event("example-1", n)])
    async with sequencing(database, shipper, signer, tmp_path / "local") as sequencer:
        await eventually(lambda: sequencer.tree_size == 4, what="sequenced")
        await asyncio.sleep(0.3)  # several failed attempts
        assert shipper.acknowledged.get(target.name, 0) == 0
        blocked.unlink()  # the storage comes back
        await eventually(lambda: shipper.acknowledged.get(target.name) == 4, what="acknowledged")
    assert (blocked / checkpoint_file_name(4)).read_text().splitlines()[1] == "4"


def test_a_witness_never_overwrites_a_different_note_for_the_same_size(tmp_path):
    target = FolderWitness(tmp_path / "w")
    target.ship(4, "lookback.test/ledger\n4\nAAAA\n\n— sig\n")
    target.ship(4, "lookback.test/ledger\n4\nAAAA\n\n— sig\n")  # the same note again: fine
    with pytest.raises(WitnessConflict):
        target.ship(4, "lookback.test/ledger\n4\nBBBB\n\n— sig\n")
    assert "AAAA" in (tmp_path / "w" / checkpoint_file_name(4)).read_text()
    remote = bare_repository(tmp_path / "w.git")
    git = GitWitness(remote, tmp_path / "c")
    git.ship(4, "note A\n")
    assert git.newest() == 4
    with pytest.raises(WitnessConflict):
        GitWitness(remote, tmp_path / f"c-{uuid.uuid4().hex[:4]}").ship(4, "note B\n")
