"""RFC 6962 Merkle tree hashing over canonical ledger entries.

The ledger commits to each event through one *entry*: canonical JSON of its global position, stream
id, stream version, event id, type and the SHA-256 of its payload and metadata (docs/audit-format.md).
Payload hashes, not payloads, enter the tree, so a payload can be shredded and the tree still verifies.

Hashing follows RFC 6962 §2.1: a leaf is SHA-256(0x00 || entry), an inner node SHA-256(0x01 || left
|| right), the tree of n leaves splits at the largest power of two below n, and the empty tree's
root is SHA-256 of nothing. `Frontier` keeps only the roots of the perfect subtrees (one per set bit
of n), so the sequencer and the verifier append in O(1) amortised time and O(log n) memory.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
# The C string encoder json.dumps(ensure_ascii=False) uses: byte-identical to shared.canonical for str.
_encode_string = json.encoder.encode_basestring


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


def ledger_entry(global_position: int, stream_id: str, stream_version: int, event_id: uuid.UUID | str,
                 event_type: str, payload_hash: bytes | str, metadata_hash: bytes | str) -> bytes:
    """The canonical encoding the leaf hash is computed over.

    Equal to `shared.canonical.canonical_json` of the seven-field object (a test proves it for any
    input); written out by hand because the sequencer and the verifier call it for every event.
    Hashes may be given as bytes or as lowercase hex; the event id as a UUID or its canonical string.
    """
    if not isinstance(payload_hash, str):
        payload_hash = payload_hash.hex()
    if not isinstance(metadata_hash, str):
        metadata_hash = metadata_hash.hex()
    if type(global_position) is not int or type(stream_version) is not int:
        raise TypeError("global_position and stream_version must be integers")
    return (
        '{"event_id":' + _encode_string(str(event_id))
        + ',"event_type":' + _encode_string(event_type)
        + ',"global_position":' + str(global_position)
        + ',"metadata_hash":' + _encode_string(metadata_hash)
        + ',"payload_hash":' + _encode_string(payload_hash)
        + ',"stream_id":' + _encode_string(stream_id)
        + ',"stream_version":' + str(stream_version) + "}"
    ).encode("utf-8")


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 §2.1 defines it, recursively. The reference for the tests."""
    n = len(entries)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(entries[0])
    k = _largest_power_of_two_below(n)
    return node_hash(mth(entries[:k]), mth(entries[k:]))


def root_of_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """The tree head over already-hashed leaves (what the ledger stores), in one pass."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
    return frontier.root()


@dataclass
class Frontier:
    """The right edge of the tree: roots of its perfect subtrees, largest (leftmost) first.

    For n leaves there is one subtree per set bit of n, so `len(nodes) == n.bit_count()`.
    """

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.nodes) != self.size.bit_count():
            raise ValueError(f"a frontier of {self.size} leaves has {self.size.bit_count()} nodes, "
                             f"not {len(self.nodes)}")

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: merge equal-sized subtrees the way a binary counter carries."""
        node = leaf
        size = self.size
        nodes = self.nodes
        while size & 1:
            node = _sha256(NODE_PREFIX + nodes.pop() + node).digest()
            size >>= 1
        nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        """RFC 6962 MTH of every leaf appended so far.

        The left subtree at each split is the largest perfect one, so the root folds the frontier
        from the right: H(f0, H(f1, ... H(f_{k-2}, f_{k-1}))).
        """
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = _sha256(NODE_PREFIX + node + root).digest()
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.nodes))


# ---------------------------------------------------------------------------------------------
# Proofs (RFC 9162 §2.1.3 and §2.1.4; the same trees as RFC 6962)
#
# Built over the list of leaf hashes (what `es.ledger` stores), so building one costs O(n) hashes:
# an auditor asks for a handful, not one per event. Checking one costs O(log n) and needs only the
# functions below and SHA-256; docs/audit-format.md §10 prints the same two checks as stand-alone
# code, and a test runs that code.


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi] (already hashed leaves), without copying the list."""
    n = hi - lo
    if n == 1:
        return leaves[lo]
    k = _largest_power_of_two_below(n)
    return node_hash(_subtree_root(leaves, lo, lo + k), _subtree_root(leaves, lo + k, hi))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf `index` (from 0) in the tree of
    the first `size` leaves (default: all of them)."""
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"no leaf {index} in a tree of {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    # Walk down from the root; the siblings come out root-first, the proof lists them leaf-first.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    return path[::-1]


def consistency_proof(leaves: Sequence[bytes], first: int, second: int | None = None) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1: the tree of the first `first` leaves is a prefix of
    the tree of the first `second` (default: all). Empty when first is 0 or equals second."""
    second = len(leaves) if second is None else second
    if not 0 <= first <= second <= len(leaves):
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, second, first, True
    while True:
        if m == hi - lo:
            if not complete:
                path.append(_subtree_root(leaves, lo, hi))
            break
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            path.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaves, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    return path[::-1]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` put `leaf` at `index` (from 0) of the tree (size, root)?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (first, first_root) a prefix of (second, second_root)?

    The empty tree is a prefix of every tree; a tree is consistent with itself (both with an
    empty proof)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is itself a node of the second
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0
