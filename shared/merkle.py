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
from dataclasses import dataclass, field
from typing import Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
# The C string encoder json.dumps(ensure_ascii=False) uses: byte-identical to shared.canonical for str.
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


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

    def copy(self) -> "Frontier":
        return Frontier(self.size, list(self.nodes))
