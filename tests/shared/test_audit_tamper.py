"""The verifier as a pure function: every one-byte change of an export is caught, and its
canonical encodings agree with shared.canonical for any input."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shared.audit_entry as audit_entry
import shared.audit_workers as audit_workers
from shared.audit_file import read_export_lines, verify_file
from shared.audit_verify import verify_labelled, verify_records
from shared.canonical import canonical_json
from shared.signing import load_private_key, public_keys_by_id

pytestmark = pytest.mark.unit

DOC = (Path(__file__).resolve().parents[2] / "docs" / "audit-format.md").read_text(encoding="utf-8")
_start = DOC.index("\n", DOC.index("```", DOC.index("<!-- example:export -->"))) + 1
EXPORT = DOC[_start:DOC.index("```", _start)].encode()  # 3 entries and a checkpoint (see the doc)
KEYS = public_keys_by_id([load_private_key(base64.b64encode(bytes(range(32))).decode())
                          .public_key()])


def verify_bytes(data: bytes):
    return verify_labelled(read_export_lines(data.splitlines(keepends=True)), KEYS)


def test_the_untouched_export_verifies():
    assert verify_bytes(EXPORT).ok


@pytest.mark.parametrize("flip", [0x01, 0x20, 0x80])
def test_changing_any_single_byte_of_an_export_is_caught(flip):
    """Every position, three different changes: digits, letters, case, quotes, escapes, UTF-8."""
    missed = []
    for i in range(len(EXPORT)):
        changed = bytearray(EXPORT)
        changed[i] ^= flip
        if verify_bytes(bytes(changed)).ok:
            missed.append((i, EXPORT[max(0, i - 20):i + 20]))
    assert not missed, f"{len(missed)} changed bytes verified anyway, e.g. {missed[:3]}"


def test_dropping_reordering_or_repeating_a_line_is_caught():
    lines = EXPORT.splitlines(keepends=True)
    variants = {
        "first entry dropped": [lines[0]] + lines[2:],
        "last entry dropped": lines[:-1],
        "checkpoint after the entries": lines[1:] + [lines[0]],
        "two entries swapped": [lines[0], lines[2], lines[1], lines[3]],
        "entry repeated": lines + [lines[-1]],
        "blank line": lines[:2] + [b"\n"] + lines[2:],
        "no final line feed": lines[:-1] + [lines[-1].rstrip(b"\n")],
    }
    for name, variant in variants.items():
        result = verify_bytes(b"".join(variant))
        assert not result.ok, name


def test_the_first_failure_names_the_position_and_the_line():
    lines = EXPORT.splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"severity":"major"', b'"severity":"minor"')
    result = verify_bytes(b"".join(lines))
    assert str(result.failure).startswith("position 2 (line 3): the payload does not match its hash")


def test_parallel_and_sequential_file_verification_agree(tmp_path, monkeypatch):
    monkeypatch.setattr(audit_workers, "PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "export.jsonl"
    path.write_bytes(EXPORT)
    assert verify_file(path, KEYS, workers=2) == verify_file(path, KEYS, workers=1)
    broken = bytearray(EXPORT)
    broken[EXPORT.rindex(b'"opened_on":"2024-03-06"') + 22] ^= 1
    path.write_bytes(bytes(broken))
    sequential, parallel = verify_file(path, KEYS, workers=1), verify_file(path, KEYS, workers=2)
    assert not sequential.ok and sequential == parallel and sequential.failure.position == 3


def test_records_without_any_checkpoint_verify_but_are_reported_unsigned():
    records = [audit_entry._decode(line.decode()) for line in EXPORT.splitlines()[1:]]
    result = verify_records(records, KEYS)
    assert result.ok and result.entries == 3 and result.latest_checkpoint == 0
    assert "3 entries after it not yet covered" in result.details()


# What canonical JSON accepts: integers within ±(2^53 - 1), object keys within the BMP (see
# shared/canonical.py; values of strings may hold any character).
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(codec="utf-8", max_codepoint=0xFFFF), max_size=6), inner,
                      max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_the_verifiers_encoder_is_the_canonical_one(value):
    assert audit_entry._encode(value).encode("utf-8") == canonical_json(value)
    assert audit_entry._decode(audit_entry._encode(value)) == value


@settings(max_examples=100, deadline=None)
@given(payload=st.dictionaries(st.text(st.characters(codec="utf-8", max_codepoint=0xFFFF), max_size=8), _json,
                               max_size=5))
def test_any_payload_round_trips_through_an_entry_record_and_verifies(payload):
    """An entry record built by the same rules as the exporter verifies, and its line is what
    the verifier rebuilds from the parts (the byte check of export lines)."""
    import hashlib
    import uuid

    from shared.merkle import leaf_hash, ledger_entry
    event_id = str(uuid.uuid4())
    metadata = {"event_id": event_id, "event_type": "example.X", "schema_version": 1}
    phash = hashlib.sha256(canonical_json(payload)).hexdigest()
    mhash = hashlib.sha256(canonical_json(metadata)).hexdigest()
    ledger = {"global_position": 1, "stream_id": "example-1", "stream_version": 1,
              "event_id": event_id, "event_type": "example.X", "payload_hash": phash,
              "metadata_hash": mhash}
    ledger["leaf_hash"] = leaf_hash(ledger_entry(**ledger)).hex()
    record = {"kind": "entry", "ledger": ledger, "event": {
        "stream_id": "example-1", "stream_version": 1, "event_id": event_id,
        "event_type": "example.X", "schema_version": 1, "payload": payload, "metadata": metadata,
        "payload_hash": phash, "metadata_hash": mhash}}
    line = audit_entry.canonical_line(record)
    result = verify_bytes(line)
    assert result.ok, result.failure
    assert audit_entry.check_entry(record, want_line=True)[2] == line
