"""RFC 6962 hashing, the incremental frontier, and the canonical ledger entry."""
from __future__ import annotations

import hashlib
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canonical import canonical_json
from shared.merkle import (EMPTY_ROOT, Frontier, leaf_hash, ledger_entry, mth, node_hash,
                           root_of_leaf_hashes)

pytestmark = pytest.mark.unit

# The reference tree of RFC 6962 implementations (certificate-transparency test data): eight
# leaves and the tree head after each of them.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_leaf_and_node_hashes_are_domain_separated():
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert leaf_hash(b"abc") != hashlib.sha256(b"abc").digest()


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_tree_heads_match_the_rfc_6962_reference_vectors(size):
    assert mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    frontier = Frontier()
    for leaf in CT_LEAVES[:size]:
        frontier.append(leaf_hash(leaf))
    assert frontier.root().hex() == CT_ROOTS[size]


def test_the_empty_tree_root_is_sha256_of_nothing():
    assert Frontier().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root_of_leaf_hashes([]) == EMPTY_ROOT


def test_the_frontier_agrees_with_the_recursive_definition_for_every_size_up_to_130():
    entries = [f"entry {i}".encode() for i in range(130)]
    frontier = Frontier()
    for n, entry in enumerate(entries, start=1):
        frontier.append(leaf_hash(entry))
        assert frontier.size == n and len(frontier.nodes) == n.bit_count()
        assert frontier.root() == mth(entries[:n]), n


def test_a_frontier_resumes_from_its_stored_nodes():
    entries = [bytes([i]) for i in range(37)]
    first = Frontier()
    for entry in entries[:21]:
        first.append(leaf_hash(entry))
    resumed = Frontier(first.size, list(first.nodes))
    for entry in entries[21:]:
        resumed.append(leaf_hash(entry))
    assert resumed.root() == mth(entries)
    with pytest.raises(ValueError):
        Frontier(5, first.nodes[:1])  # 5 leaves need 2 subtree roots


def test_changing_any_one_leaf_changes_the_root():
    entries = [bytes([i]) * 3 for i in range(11)]
    root = mth(entries)
    for i in range(len(entries)):
        changed = list(entries)
        changed[i] = b"x"
        assert mth(changed) != root


_text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(position=st.integers(1, 2**53 - 1), stream=_text, version=st.integers(1, 2**53 - 1),
       event_type=_text, payload=st.binary(min_size=32, max_size=32),
       metadata=st.binary(min_size=32, max_size=32), event_id=st.uuids())
def test_the_ledger_entry_is_the_canonical_json_of_its_seven_fields(
        position, stream, version, event_type, payload, metadata, event_id):
    expected = canonical_json({
        "global_position": position, "stream_id": stream, "stream_version": version,
        "event_id": str(event_id), "event_type": event_type, "payload_hash": payload.hex(),
        "metadata_hash": metadata.hex()})
    assert ledger_entry(position, stream, version, event_id, event_type, payload, metadata) == expected
    assert ledger_entry(position, stream, version, str(event_id), event_type, payload.hex(),
                        metadata.hex()) == expected


def test_the_ledger_entry_refuses_non_integer_positions():
    with pytest.raises(TypeError):
        ledger_entry("1", "example-a", 1, uuid.uuid4(), "t", b"\0" * 32, b"\0" * 32)
    with pytest.raises(TypeError):
        ledger_entry(True, "example-a", 1, uuid.uuid4(), "t", b"\0" * 32, b"\0" * 32)
