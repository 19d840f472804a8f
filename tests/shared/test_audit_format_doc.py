"""docs/audit-format.md's worked example, recomputed: the spec and the code cannot drift apart."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from shared.audit_file import read_export_lines
from shared.audit_verify import verify_labelled
from shared.canonical import canonical_json
from shared.merkle import Frontier, leaf_hash, ledger_entry
from shared.signing import (
    CheckpointSigner,
    load_private_key,
    public_key_to_text,
    public_keys_by_id,
)

pytestmark = pytest.mark.unit

DOC = (Path(__file__).resolve().parents[2] / "docs" / "audit-format.md").read_text(encoding="utf-8")
EXAMPLE = DOC[DOC.index("## 8. Worked example"):]


def block_after(marker: str) -> str:
    start = DOC.index(marker)
    fence = DOC.index("```", start)
    body_start = DOC.index("\n", fence) + 1
    return DOC[body_start:DOC.index("```", body_start)]


def stated(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}\s*=\s*(\S+)$", EXAMPLE, re.MULTILINE)
    assert match, f"the worked example states no value for {name}"
    return match.group(1)


EVENTS = json.loads(block_after("<!-- example:events -->"))
SIGNER = CheckpointSigner(load_private_key(base64.b64encode(bytes(range(32))).decode()),
                          "lookback.example/ledger")


def computed() -> dict[str, str]:
    values: dict[str, str] = {}
    frontier = Frontier()
    for e in EVENTS:
        n = e["global_position"]
        payload, metadata = canonical_json(e["payload"]), canonical_json(e["metadata"])
        values[f"payload_hash_{n}"] = hashlib.sha256(payload).hexdigest()
        values[f"metadata_hash_{n}"] = hashlib.sha256(metadata).hexdigest()
        entry = ledger_entry(n, e["stream_id"], e["stream_version"], e["event_id"], e["event_type"],
                             values[f"payload_hash_{n}"], values[f"metadata_hash_{n}"])
        values[f"entry_{n}"] = entry.decode()
        values[f"payload_{n}"], values[f"metadata_{n}"] = payload.decode(), metadata.decode()
        values[f"leaf_hash_{n}"] = leaf_hash(entry).hex()
        frontier.append(leaf_hash(entry))
        values[f"root_{n}"] = frontier.root().hex()
    checkpoint = SIGNER.sign(frontier.size, frontier.root())
    values["note"] = checkpoint.note
    values["signature"] = checkpoint.signature.hex()
    return values


@pytest.mark.parametrize("name", [f"{kind}_{n}" for n in (1, 2, 3) for kind in
                                  ("payload_hash", "metadata_hash", "leaf_hash", "root")])
def test_every_hash_in_the_worked_example_is_what_the_code_computes(name):
    assert stated(name) == computed()[name]


def test_the_canonical_texts_in_the_worked_example_are_byte_exact():
    values = computed()
    for name in ("payload_1", "metadata_1", "entry_1", "payload_2"):
        assert f"```text\n{values[name]}\n```" in EXAMPLE, name
    assert len(values["payload_1"].encode()) == 112 and len(values["entry_1"].encode()) == 324


def test_the_example_key_checkpoint_and_signature_are_reproducible():
    assert stated("public_key (base64)") == public_key_to_text(SIGNER.public_key)
    assert stated("key_id") == SIGNER.key_id
    assert stated("signature") == computed()["signature"]
    shown_note = block_after("The note (`origin`")
    assert shown_note == computed()["note"]


def test_the_example_export_verifies_and_every_line_is_as_the_exporter_writes_it():
    export = block_after("<!-- example:export -->").encode()
    keys = public_keys_by_id([load_private_key(base64.b64encode(bytes(range(32))).decode())
                              .public_key()])
    result = verify_labelled(read_export_lines(export.splitlines(keepends=True)), keys)
    assert result.summary() == f"OK 3 events, root {stated('root_3')}"
    assert result.checkpoints == 1
    assert f"OK 3 events, root {stated('root_3')}" in EXAMPLE


def _documented_proof_checks() -> dict:
    start = DOC.index("```python", DOC.index("<!-- proofs:begin -->")) + len("```python")
    namespace: dict = {}
    exec(DOC[start:DOC.index("```", start)], namespace)  # the code an auditor copies
    return namespace


def test_the_documented_proof_checks_accept_every_proof_we_make_and_pymerkles_roots():
    import warnings

    from pymerkle import InmemoryTree

    from shared.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof, leaf_hash

    checks = _documented_proof_checks()
    entries = [f"entry {i}".encode() for i in range(70)]
    leaves = [leaf_hash(e) for e in entries]
    tree = InmemoryTree(algorithm="sha256")
    for entry in entries:
        tree.append_entry(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        roots = [EMPTY_ROOT] + [tree.get_root(n) for n in range(1, 71)]
    for size in range(1, 71):
        for index in range(size):
            proof = inclusion_proof(leaves, index, size)
            assert checks["verify_inclusion"](index, size, leaves[index], proof, roots[size])
            assert not checks["verify_inclusion"](index, size, leaves[index], proof, roots[size - 1])
    for second in range(0, 41):
        for first in range(0, second + 1):
            proof = consistency_proof(leaves, first, second)
            assert checks["verify_consistency"](first, second, roots[first], roots[second], proof)
            if 0 < first < second:
                assert not checks["verify_consistency"](first, second, roots[first - 1],
                                                        roots[second], proof)
