"""Inclusion and consistency proofs as documents an auditor keeps, and their checks.

An *inclusion* document proves that one ledger entry is in the tree a signed checkpoint commits
to; a *consistency* document proves that the tree of one size is a prefix of a larger one (so a
log an auditor verified earlier was only appended to since). Both are RFC 9162 proofs over the
tree of docs/audit-format.md §4; the document carries the signed checkpoint notes it relies on,
so it can be checked offline with the public key alone (`lookback audit check-proof`, or the
stand-alone functions of docs/audit-format.md §10).

The builders read leaf hashes from `es.ledger` in one REPEATABLE READ snapshot (O(n) per proof:
proofs are asked for one at a time, by people).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.errors import NotFoundError, ValidationFailed
from shared.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    ledger_entry,
    root_of_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from shared.signing import CheckpointError, verify_note

_ENTRY = """SELECT global_position, stream_id, stream_version, event_id::text, event_type,
                   payload_hash, metadata_hash, leaf_hash
              FROM es.ledger WHERE global_position = $1"""
_LEAVES = "SELECT leaf_hash FROM es.ledger WHERE global_position <= $1 ORDER BY global_position"
_CHECKPOINT_AT = "SELECT note FROM es.checkpoints WHERE tree_size = $1"
_LATEST_COVERING = """SELECT tree_size, note FROM es.checkpoints WHERE tree_size >= $1
                       ORDER BY tree_size DESC LIMIT 1"""
_LATEST = "SELECT tree_size, note FROM es.checkpoints ORDER BY tree_size DESC LIMIT 1"


class ProofError(ValueError):
    """A proof document that does not prove what it says."""


def _bad_request(field: str, reason: str) -> ValidationFailed:
    return ValidationFailed([(field, reason)])


async def latest_checkpoint(conn: asyncpg.Connection) -> dict[str, Any]:
    row = await conn.fetchrow(_LATEST)
    if row is None:
        raise NotFoundError("no checkpoint has been signed yet", code="no_checkpoint")
    return {"tree_size": row["tree_size"], "note": row["note"]}


async def _leaves(conn: asyncpg.Connection, size: int) -> list[bytes]:
    leaves = [r[0] for r in await conn.fetch(_LEAVES, size)]
    if len(leaves) != size:
        raise NotFoundError(f"the ledger holds {len(leaves)} entries, not {size}",
                            code="tree_size_unknown")
    return leaves


async def inclusion_document(conn: asyncpg.Connection, position: int,
                             tree_size: int | None = None) -> dict[str, Any]:
    """The proof that the entry at `position` is in the signed tree of `tree_size` (default: the
    newest checkpoint, which covers it if any does)."""
    if position < 1:
        raise _bad_request("position", "positions start at 1")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        entry = await conn.fetchrow(_ENTRY, position)
        if entry is None:
            raise NotFoundError(f"no ledger entry at position {position}", code="position_unknown")
        if tree_size is None:
            row = await conn.fetchrow(_LATEST_COVERING, position)
            if row is None:
                raise NotFoundError(f"no checkpoint covers position {position} yet",
                                    code="not_yet_signed")
            tree_size, note = row["tree_size"], row["note"]
        else:
            if tree_size < position:
                raise _bad_request("tree_size", f"a tree of {tree_size} does not hold position "
                                   f"{position}")
            note = await conn.fetchval(_CHECKPOINT_AT, tree_size)
            if note is None:
                raise NotFoundError(f"no checkpoint signs tree size {tree_size}",
                                    code="no_checkpoint")
        leaves = await _leaves(conn, tree_size)
    return {
        "kind": "inclusion", "position": position, "tree_size": tree_size,
        "ledger_entry": {"event_id": entry["event_id"], "event_type": entry["event_type"],
                         "global_position": position, "metadata_hash": entry["metadata_hash"].hex(),
                         "payload_hash": entry["payload_hash"].hex(),
                         "stream_id": entry["stream_id"], "stream_version": entry["stream_version"]},
        "leaf_hash": entry["leaf_hash"].hex(),
        "proof": [p.hex() for p in inclusion_proof(leaves, position - 1, tree_size)],
        "checkpoint": note,
    }


async def consistency_document(conn: asyncpg.Connection, first: int, second: int) -> dict[str, Any]:
    """The proof that the tree of `first` entries is a prefix of the tree of `second`; with the
    signed notes of both sizes where checkpoints sign them."""
    if not 0 <= first <= second:
        raise _bad_request("first", "sizes are 0 <= first <= second")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        leaves = await _leaves(conn, second)
        notes = {size: await conn.fetchval(_CHECKPOINT_AT, size) for size in (first, second)}
    return {
        "kind": "consistency", "first": first, "second": second,
        "first_root": root_of_leaf_hashes(leaves[:first]).hex(),
        "second_root": root_of_leaf_hashes(leaves).hex(),
        "proof": [p.hex() for p in consistency_proof(leaves, first, second)],
        "first_checkpoint": notes[first], "second_checkpoint": notes[second],
    }


def _hexes(doc: Mapping[str, Any], name: str) -> list[bytes]:
    values = doc.get(name)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProofError(f"{name} is a list of hex strings")
    try:
        hashes = [bytes.fromhex(v) for v in values]
    except ValueError as exc:
        raise ProofError(f"{name}: {exc}") from None
    if any(len(h) != 32 for h in hashes):
        raise ProofError(f"{name}: every hash is 32 bytes")
    return hashes


def _signed_root(note: Any, size: int, keys: Mapping[str, Ed25519PublicKey]) -> bytes:
    if not isinstance(note, str):
        raise ProofError(f"no signed checkpoint for tree size {size} in the document")
    try:
        checkpoint = verify_note(note, keys)
    except CheckpointError as exc:
        raise ProofError(f"the checkpoint at {size}: {exc}") from None
    if checkpoint.tree_size != size:
        raise ProofError(f"the checkpoint signs tree size {checkpoint.tree_size}, not {size}")
    return checkpoint.root_hash


def check_inclusion(doc: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str:
    """Check an inclusion document against its signed checkpoint; a sentence, or ProofError."""
    position, size = doc.get("position"), doc.get("tree_size")
    if type(position) is not int or type(size) is not int:
        raise ProofError("position and tree_size are integers")
    root = _signed_root(doc.get("checkpoint"), size, keys)
    entry = doc.get("ledger_entry")
    if not isinstance(entry, dict) or entry.get("global_position") != position:
        raise ProofError("ledger_entry is the entry's seven members, at the document's position")
    try:
        leaf = leaf_hash(ledger_entry(**entry))
    except TypeError as exc:
        raise ProofError(f"ledger_entry: {exc}") from None
    if leaf.hex() != doc.get("leaf_hash"):
        raise ProofError("leaf_hash is not the hash of ledger_entry")
    if not verify_inclusion(position - 1, size, leaf, _hexes(doc, "proof"), root):
        raise ProofError(f"the proof does not put this entry at position {position} of the signed "
                         f"tree of {size}")
    return (f"OK entry {position} ({entry.get('event_type')}, {entry.get('stream_id')} "
            f"v{entry.get('stream_version')}) is in the signed tree of {size}, root {root.hex()}")


def check_consistency(doc: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str:
    """Check a consistency document; the roots are taken from the signed notes when present."""
    first, second = doc.get("first"), doc.get("second")
    if type(first) is not int or type(second) is not int:
        raise ProofError("first and second are integers")
    roots = []
    for size, name in ((first, "first"), (second, "second")):
        note = doc.get(f"{name}_checkpoint")
        stated = doc.get(f"{name}_root")
        root = _signed_root(note, size, keys) if note is not None else None
        if root is None:
            if not isinstance(stated, str):
                raise ProofError(f"no root for tree size {size}")
            root = bytes.fromhex(stated)
        elif stated is not None and stated != root.hex():
            raise ProofError(f"{name}_root differs from the signed checkpoint's root")
        roots.append(root)
    if not verify_consistency(first, second, roots[0], roots[1], _hexes(doc, "proof")):
        raise ProofError(f"the proof does not show the tree of {first} is a prefix of the tree "
                         f"of {second}")
    signed = [str(s) for s, n in ((first, "first"), (second, "second"))
              if doc.get(f"{n}_checkpoint") is not None]
    return (f"OK the tree of {first} entries is a prefix of the tree of {second} (signed: "
            f"{', '.join(signed) or 'neither; roots as stated'})")


def check_document(doc: Any, keys: Mapping[str, Ed25519PublicKey]) -> str:
    if not isinstance(doc, dict) or doc.get("kind") not in ("inclusion", "consistency"):
        raise ProofError("a proof document is a JSON object of kind inclusion or consistency")
    return (check_inclusion if doc["kind"] == "inclusion" else check_consistency)(doc, keys)


def load_consistency_proofs(paths: Sequence[Path]) -> dict[tuple[int, int], list[bytes]]:
    """(first, second) -> proof, from consistency documents (for `verify --consistency-proof`)."""
    proofs: dict[tuple[int, int], list[bytes]] = {}
    for path in paths:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("kind") != "consistency":
            raise ProofError(f"{path} is not a consistency proof document")
        if type(doc.get("first")) is not int or type(doc.get("second")) is not int:
            raise ProofError(f"{path}: first and second are integers")
        proofs[(doc["first"], doc["second"])] = _hexes(doc, "proof")
    return proofs
