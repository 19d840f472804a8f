"""RFC 9162 proofs: roots and proofs agree with `pymerkle` (an independent implementation) on
many tree sizes, and a wrong proof never verifies."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as oracle_verify_consistency

from shared.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.unit


def oracle(entries: list[bytes]) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")  # RFC 6962 prefixes (0x00 leaf, 0x01 node)
    for entry in entries:
        tree.append_entry(entry)
    return tree


def oracle_root(tree: InmemoryTree, size: int) -> bytes:
    return tree.get_root(size) if size else EMPTY_ROOT


sizes = st.integers(min_value=1, max_value=70)


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_roots_and_inclusion_proofs_match_pymerkle(size, data):
    entries = [f"entry {i}".encode() for i in range(size)]
    leaves = [leaf_hash(e) for e in entries]
    tree = oracle(entries)
    assert root_of_leaf_hashes(leaves) == oracle_root(tree, size)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    # pymerkle's path starts with the leaf itself, then the RFC 9162 audit path
    oracle_path = [bytes.fromhex(h) for h in tree.prove_inclusion(index + 1, size).serialize()["path"]]
    assert oracle_path[1:] == proof
    assert verify_inclusion(index, size, leaves[index], proof, oracle_root(tree, size))


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_consistency_proofs_verify_against_the_roots_pymerkle_computes(size, data):
    entries = [f"entry {i}".encode() for i in range(size)]
    leaves = [leaf_hash(e) for e in entries]
    tree = oracle(entries)
    first = data.draw(st.integers(0, size))
    proof = consistency_proof(leaves, first, size)
    assert verify_consistency(first, size, oracle_root(tree, first), oracle_root(tree, size), proof)
    if 0 < first < size:
        oracle_proof = tree.prove_consistency(first, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            oracle_verify_consistency(tree.get_root(first), tree.get_root(size), oracle_proof)
    # and our proof is exactly as long as RFC 9162 says: no padding an attacker could vary
    assert len(proof) == _rfc_proof_length(first, size)


def _rfc_proof_length(first: int, second: int) -> int:
    if first in (0, second):
        return 0
    length, lo, hi, m, complete = 0, 0, second, first, True
    while m != hi - lo:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        length += 1
        if m <= k:
            hi = lo + k
        else:
            lo, m, complete = lo + k, m - k, False
    return length + (0 if complete else 1)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(2, 40), data=st.data())
def test_a_changed_proof_leaf_or_size_never_verifies(size, data):
    leaves = [leaf_hash(f"e{i}".encode()) for i in range(size)]
    root = root_of_leaf_hashes(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    assert not verify_inclusion(index, size, leaf_hash(b"other"), proof, root)
    assert not verify_inclusion((index + 1) % size, size, leaves[index], proof, root) or \
        leaves[(index + 1) % size] == leaves[index]
    if proof:
        broken = list(proof)
        broken[data.draw(st.integers(0, len(proof) - 1))] = leaf_hash(b"x")
        assert not verify_inclusion(index, size, leaves[index], broken, root)
    first = data.draw(st.integers(1, size - 1))
    cproof = consistency_proof(leaves, first, size)
    old_root = root_of_leaf_hashes(leaves[:first])
    assert not verify_consistency(first, size, leaf_hash(b"x"), root, cproof)
    assert not verify_consistency(first, size, old_root, leaf_hash(b"x"), cproof)
    assert not verify_consistency(first, size, old_root, root, cproof + [root])
