"""`lookback audit prove / consistency / check-proof` and the /audit HTTP routes, on a real log."""
from __future__ import annotations

import json

import pytest

import tests.shared.test_audit as with_a_log
from shared.sequencer import Sequencer
from shared.signing import CheckpointSigner, load_private_key
from tests.faults import eventually
from tests.registry.support import as_, registry_client
from tests.shared.test_audit import EVENTS, event, lookback

pytestmark = pytest.mark.integration
log = with_a_log.log  # the fixture: a signed log of EVENTS events in a fresh database


async def test_an_inclusion_proof_of_one_event_checks_offline_with_the_public_key(log, tmp_path):
    result = await lookback("prove", "3", "--database-url", log.dsn)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "inclusion" and doc["position"] == 3 and doc["tree_size"] == EVENTS
    assert doc["checkpoint"].splitlines()[1] == str(EVENTS)
    path = tmp_path / "proof.json"
    path.write_text(result.stdout)
    checked = await lookback("check-proof", path, "--public-key", log.public_key)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"OK entry 3 (example.Happened, example-2 v1) is in the signed "
                                     f"tree of {EVENTS}, root {log.root}")

    doc["ledger_entry"]["stream_version"] = 2  # a claim about another entry
    path.write_text(json.dumps(doc))
    refused = await lookback("check-proof", path, "--public-key", log.public_key)
    assert refused.exit_code == 1 and refused.stdout.startswith("FAIL leaf_hash is not the hash")


async def test_a_consistency_proof_between_two_checkpoints_checks_offline(log, tmp_path):
    result = await lookback("consistency", "5", str(EVENTS), "--database-url", log.dsn)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["first_checkpoint"] is not None and doc["second_checkpoint"] is not None
    path = tmp_path / "consistency.json"
    path.write_text(result.stdout)
    checked = await lookback("check-proof", path, "--public-key", log.public_key)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"OK the tree of 5 entries is a prefix of the tree of {EVENTS} "
                                     f"(signed: 5, {EVENTS})")
    doc["proof"][0] = "00" * 32
    path.write_text(json.dumps(doc))
    assert (await lookback("check-proof", path, "--public-key", log.public_key)).exit_code == 1


async def test_a_proof_for_a_position_not_in_the_ledger_is_a_clear_error(log):
    result = await lookback("prove", str(EVENTS + 5), "--database-url", log.dsn)
    assert result.exit_code == 1 and f"no ledger entry at position {EVENTS + 5}" in result.output


async def test_auditors_get_proofs_over_http_and_district_roles_do_not(log):
    async with registry_client(log.dsn, run_sequencer=False) as client:
        latest = await client.get("/audit/checkpoints/latest", headers=as_("auditor"))
        assert latest.status_code == 200 and latest.json()["tree_size"] == EVENTS
        proof = await client.get("/audit/proofs/inclusion/7", headers=as_("auditor"))
        assert proof.status_code == 200 and proof.json()["position"] == 7
        consistency = await client.get("/audit/proofs/consistency", params={"first": 5, "second": 10},
                                       headers=as_("admin"))
        assert consistency.status_code == 200 and len(consistency.json()["proof"]) > 0
        forbidden = await client.get("/audit/proofs/inclusion/7", headers=as_("echeng-reporter"))
        assert forbidden.status_code == 403
        assert (await client.get("/audit/proofs/inclusion/7")).status_code == 401
        missing = await client.get("/audit/proofs/inclusion/999", headers=as_("auditor"))
        assert missing.status_code == 404


async def test_an_export_verifies_after_the_live_system_signed_more_and_a_proof_ties_them(
        log, pg_store, tmp_path):
    """The false alarm of issue 15: an untouched export against the sequencer's folder, once the
    live system has signed a newer checkpoint."""
    export = tmp_path / "log.jsonl"
    assert (await lookback("export", "--database-url", log.dsn, "-o", export,
                           "--no-progress")).exit_code == 0
    for n in range(3):
        await pg_store.append([event("example-9", n)])
    signer = CheckpointSigner(load_private_key(log.private_key), "lookback.test/ledger")
    sequencer = Sequencer(log.dsn, signer, log.checkpoint_dir, checkpoint_every_events=1,
                          role="lookback_sequencer")
    try:
        await eventually(lambda: _sequenced(sequencer, EVENTS + 3), what="sequenced")
        await sequencer.checkpoint()
    finally:
        await sequencer.close()
    newer = EVENTS + 3
    base = ["verify", export, "--public-key", log.public_key, "--checkpoint-dir",
            log.checkpoint_dir, "--no-progress"]
    result = await lookback(*base)
    assert result.exit_code == 0, result.output
    assert f"signs tree size {newer}, newer than this log of {EVENTS} entries" in result.stderr

    proof = await lookback("consistency", str(EVENTS), str(newer), "--database-url", log.dsn)
    path = tmp_path / "consistency.json"
    path.write_text(proof.stdout)
    result = await lookback(*base, "--consistency-proof", path)
    assert result.exit_code == 0, result.output
    assert (f"the consistency proof from {EVENTS} to {newer} shows this log is its first "
            f"{EVENTS} entries") in result.stderr


async def _sequenced(sequencer: Sequencer, size: int) -> bool:
    await sequencer.run_once()
    return sequencer.tree_size >= size
