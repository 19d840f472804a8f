"""What docs/audit-format.md §7 promises about checkpoints, each checked on a small signed log."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shared.audit_cli import cli
from shared.audit_entry import canonical_line
from shared.audit_file import read_checkpoint_dir, read_export_lines, verify_file
from shared.audit_verify import verify_labelled
from shared.merkle import EMPTY_ROOT, consistency_proof
from shared.signing import public_key_to_text
from tests.shared.audit_support import KEYS, SIGNER, MemoryLog, checkpoint_record

pytestmark = pytest.mark.unit
PUBLIC = public_key_to_text(SIGNER.public_key)


def verify(data: bytes, **kwargs):
    return verify_labelled(read_export_lines(data.splitlines(keepends=True)), KEYS, **kwargs)


def run(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_genuine_export_verifies_although_the_live_system_signed_a_newer_checkpoint(tmp_path):
    log = MemoryLog.build(9, signed_at=[4, 9, 12])  # 12 was signed after the export was taken
    export = tmp_path / "log.jsonl"
    export.write_bytes(log.export(9))
    folder = log.write_checkpoint_dir(tmp_path / "checkpoints")
    result = run("verify", export, "--public-key", PUBLIC, "--checkpoint-dir", folder,
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK 9 events")
    assert "checkpoint-000000000012.txt: signs tree size 12, newer than this log of 9 entries; " \
           "not checked against it" in result.stderr


def test_a_newer_checkpoint_is_checked_with_a_consistency_proof_when_one_is_given(tmp_path):
    log = MemoryLog.build(9, signed_at=[4, 9, 12])
    export = tmp_path / "log.jsonl"
    export.write_bytes(log.export(9))
    folder = log.write_checkpoint_dir(tmp_path / "checkpoints")
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps({"kind": "consistency", "first": 9, "second": 12, "proof": [
        p.hex() for p in consistency_proof(log.leaves, 9, 12)]}))
    result = run("verify", export, "--public-key", PUBLIC, "--checkpoint-dir", folder,
                 "--consistency-proof", proof, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "the consistency proof from 9 to 12 shows this log is its first 9 entries" in result.stderr


def test_a_rewritten_export_fails_the_consistency_proof_of_a_newer_checkpoint(tmp_path):
    genuine = MemoryLog.build(9, signed_at=[12])
    rewritten = MemoryLog.build(9, signed_at=[], payload={"n": "rewritten"})
    export = tmp_path / "log.jsonl"
    export.write_bytes(rewritten.export(9))  # signs nothing itself: only the newer file can catch it
    folder = genuine.write_checkpoint_dir(tmp_path / "checkpoints")
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps({"kind": "consistency", "first": 9, "second": 12, "proof": [
        p.hex() for p in consistency_proof(genuine.leaves, 9, 12)]}))
    result = run("verify", export, "--public-key", PUBLIC, "--checkpoint-dir", folder,
                 "--consistency-proof", proof, "--no-progress")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL position 12 (checkpoint-000000000012.txt): the "
                                    "consistency proof from tree size 9")


def test_checkpoint_records_out_of_ascending_order_fail():
    log = MemoryLog.build(6, signed_at=[2, 5])
    result = verify(log.export(6, checkpoint_sizes=[5, 2]))
    assert not result.ok
    assert str(result.failure).startswith("position 2 (line 2): checkpoint at tree size 2: "
                                          "checkpoints are in ascending tree size")


def test_a_checkpoint_record_after_an_entry_fails():
    log = MemoryLog.build(3, signed_at=[3])
    lines = log.export(3).splitlines(keepends=True)
    result = verify(b"".join(lines[1:2] + lines[:1] + lines[2:]))
    assert str(result.failure).startswith("position 3 (line 2): checkpoint at tree size 3: every "
                                          "checkpoint record comes before the first entry")


def test_a_checkpoint_file_whose_name_disagrees_with_its_signed_size_fails(tmp_path):
    log = MemoryLog.build(6, signed_at=[3, 6])
    folder = log.write_checkpoint_dir(tmp_path / "checkpoints")
    (folder / "checkpoint-000000000003.txt").rename(folder / "checkpoint-000000000004.txt")
    export = tmp_path / "log.jsonl"
    export.write_bytes(log.export(6))
    result = verify_file(export, KEYS, read_checkpoint_dir(folder))
    assert not result.ok
    assert str(result.failure) == (
        "position 3 (checkpoint-000000000004.txt): the file is named for tree size 4, but its note "
        "signs tree size 3: a file was renamed or replaced")


def test_a_failing_checkpoint_line_is_reported_as_position_and_line():
    log = MemoryLog.build(3, signed_at=[3])
    data = log.export(3).replace(b'"tree_size":3', b'"tree_size":2', 1)
    result = verify(data)
    assert str(result.failure).startswith("position 2 (line 1): checkpoint at tree size 2: the "
                                          "record's tree_size")
    assert verify(log.export(3)).ok


def test_a_swap_of_two_entries_is_reported_as_out_of_order_not_only_as_a_deletion():
    log = MemoryLog.build(4, signed_at=[])
    lines = log.export(4).splitlines(keepends=True)
    result = verify(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    assert str(result.failure) == ("position 2 (line 2): position 2 is missing here (the next entry "
                                   "is at 3): a ledger row was deleted, or entries are out of order")


def test_an_empty_tree_may_be_signed_and_verifies():
    data = canonical_line(checkpoint_record(SIGNER.sign(0, EMPTY_ROOT)))
    result = verify(data)
    assert result.ok and result.entries == 0 and result.checkpoints == 1
    wrong = canonical_line(checkpoint_record(SIGNER.sign(0, bytes(32))))
    assert str(verify(wrong).failure).startswith("position 0 (line 1): checkpoint at tree size 0: "
                                                 "the empty tree's root is SHA-256 of nothing")


def test_the_sequencers_folder_and_a_witness_copy_are_checked_together(tmp_path):
    log = MemoryLog.build(6, signed_at=[3, 6])
    export = tmp_path / "log.jsonl"
    export.write_bytes(log.export(6))
    local = log.write_checkpoint_dir(tmp_path / "local")
    witness = log.write_checkpoint_dir(tmp_path / "witness")
    result = run("verify", export, "--public-key", PUBLIC, "--checkpoint-dir", local,
                 "--checkpoint-dir", witness, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "6 signed checkpoint(s) verified" in result.stderr  # 2 in each folder, 2 in the export
    other = MemoryLog.build(6, signed_at=[6], payload={"n": "another log"})
    other.write_checkpoint_dir(witness)  # the witness holds another log's head at 6
    result = run("verify", export, "--public-key", PUBLIC, "--checkpoint-dir", local,
                 "--checkpoint-dir", witness, "--no-progress")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL position 6 (line 8): the tree of the first 6 entries")
    assert f"{witness}/checkpoint-000000000006.txt" in result.stdout
