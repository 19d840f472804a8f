"""The audit log's verifier as pure functions: one entry at a time, then the fold over all of them.

The format is specified in docs/audit-format.md. Verification is one pure fold, shared by every
source (an export file: shared/audit_file.py; the live database read in one REPEATABLE READ
snapshot: shared/audit_db.py):

- `check_entry(record)` checks everything about one entry that does not depend on the others
  (hashes, leaf, the event row against the ledger row) and returns its position and leaf hash;
- `Verifier` folds records in export order: checkpoints (signatures, ascending), then entries
  (dense positions, the Merkle tree, each signed root when the tree reaches its size);
- checkpoints from outside the source (a checkpoint folder, a witness copy) are fed first with
  `feed_external`; one that signs a tree larger than the source is checked with a consistency
  proof when one is given, and otherwise reported (an export is older than the live log) or, for
  the live database, failed (the database must hold everything ever signed);
- `verify_records(records, keys)` is that fold over any iterable of records.

Because `check_entry` is independent per record, the sources may run it in worker processes
(shared/audit_workers.py) and send only leaf hashes to the fold. It stops at the first record
that does not match and says why.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.audit_entry import AuditFormatError, Mismatch, canonical_line, check_entry, position_of
from shared.merkle import EMPTY_ROOT, Frontier, verify_consistency
from shared.signing import CheckpointError, parse_note, verify_note

CHECKPOINT_KEYS = frozenset({"kind", "tree_size", "root_hash", "key_id", "signature", "note"})
CHECKPOINT_FILE = re.compile(r"checkpoint-(\d{12})\.txt")


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    position: int | None = None
    where: str | None = None  # which input: "line 7", "checkpoint-000000000014.txt", …

    def __str__(self) -> str:
        if self.position is not None:
            place = f"position {self.position}" + (f" ({self.where})" if self.where else "")
        else:
            place = self.where or "log"
        return f"{place}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    entries: int
    root: bytes
    checkpoints: int
    latest_checkpoint: int
    failure: Failure | None = None
    # What was seen but could not be checked against this source (a newer checkpoint without a
    # consistency proof), or was checked by a proof: said, never silently passed over.
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        if self.failure is not None:
            return f"FAIL {self.failure}"
        return f"OK {self.entries} events, root {self.root.hex()}"

    def details(self) -> str:
        covered = min(self.latest_checkpoint, self.entries)
        unsigned = self.entries - covered
        lines = [f"{self.checkpoints} signed checkpoint(s) verified, latest covering tree size "
                 f"{covered}; {unsigned} entr{'y' if unsigned == 1 else 'ies'} after it not yet "
                 "covered by a signature"]
        return "\n".join(lines + list(self.notes))


# ---------------------------------------------------------------------------------------------
# The fold


class Verifier:
    """Feed records in export order, then `result()`. Stops at the first failure.

    `consistency_proofs` maps (old size, new size) to an RFC 9162 consistency proof; it lets an
    external checkpoint that signs a tree larger than the source be checked against the source's
    tree. `beyond_end` says what such a checkpoint without a proof is: "report" (an export is a
    snapshot; the live log has grown since) or "fail" (the live database must hold every entry a
    checkpoint ever signed).
    """

    def __init__(self, public_keys: Mapping[str, Ed25519PublicKey], *,
                 consistency_proofs: Mapping[tuple[int, int], Sequence[bytes]] | None = None,
                 beyond_end: str = "report") -> None:
        if beyond_end not in ("report", "fail"):
            raise ValueError("beyond_end is 'report' or 'fail'")
        self.public_keys = dict(public_keys)
        self.consistency_proofs = dict(consistency_proofs or {})
        self.beyond_end = beyond_end
        self.frontier = Frontier()
        self.checkpoints = 0
        self.latest_checkpoint = 0
        self.failure: Failure | None = None
        self.notes: list[str] = []
        # tree size -> [(root, where, external)] of verified signatures waiting for the tree
        self._pending: dict[int, list[tuple[bytes, str | None, bool]]] = {}
        self._where: str | None = None
        self._last_record_checkpoint: int | None = None   # ascending order within the source
        self._last_external: dict[str, int] = {}           # ... and within each external folder

    def feed(self, record: Any, where: str | None = None, raw: bytes | None = None) -> Failure | None:
        """Check one record of the source; `where` names it in a failure (e.g. "line 7").

        `raw`, when given, is the line the record was read from: it must be exactly the record's
        canonical JSON plus a line feed, so no byte of an export goes unchecked.
        """
        if self.failure is not None:
            return self.failure
        self._where = where
        try:
            kind = record.get("kind") if type(record) is dict else None
            if kind == "entry":
                self._expect(position_of(record))
                position, leaf, line = check_entry(record, raw is not None)
                self._fold(position, leaf)
            elif kind == "checkpoint":
                self._checkpoint(record, external=False)
                line = canonical_line(record) if raw is not None else None
            else:
                raise Mismatch(f"a record is a JSON object whose kind is entry or checkpoint, not "
                               f"{kind!r}")
            if raw is not None and line != raw:
                raise Mismatch("the line is not in canonical form (its bytes differ from the "
                               "canonical JSON of what it says)", _position_of_any(record))
        except Mismatch as exc:
            self.failure = Failure(exc.reason, exc.position, where)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.failure = Failure(f"malformed record: {type(exc).__name__}: {exc}",
                                   _position_of_any(record), where)
        return self.failure

    def feed_external(self, where: str, record: Any) -> Failure | None:
        """A checkpoint from outside the source (a file of the checkpoint folder, a witness copy),
        fed before the source's own records, in ascending tree size. A file's name must state the
        size it signs (`checkpoint-<size, 12 digits>.txt`)."""
        if self.failure is not None:
            return self.failure
        self._where = where
        try:
            match = CHECKPOINT_FILE.fullmatch(where.rsplit("/", 1)[-1])
            size = record.get("tree_size") if type(record) is dict else None
            if match is not None and type(size) is int and int(match.group(1)) != size:
                raise Mismatch(f"the file is named for tree size {int(match.group(1))}, but its note "
                               f"signs tree size {size}: a file was renamed or replaced", size)
            self._checkpoint(record, external=True)
        except Mismatch as exc:
            self.failure = Failure(exc.reason, exc.position, where)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.failure = Failure(f"malformed checkpoint: {type(exc).__name__}: {exc}",
                                   _position_of_any(record), where)
        return self.failure

    def feed_checked(self, position: int, leaf: bytes, where: str | None = None) -> Failure | None:
        """Fold an entry that `check_entry` already passed (e.g. in a worker process)."""
        if self.failure is not None:
            return self.failure
        try:
            self._expect(position)
            self._fold(position, leaf)
        except Mismatch as exc:
            self.failure = Failure(exc.reason, exc.position, where)
        return self.failure

    def feed_mismatch(self, mismatch: Mismatch, where: str | None = None) -> Failure:
        """A record that `check_entry` refused: a gap before it is reported first."""
        if self.failure is None:
            try:
                self._expect(mismatch.position)
                self.failure = Failure(mismatch.reason, mismatch.position, where)
            except Mismatch as exc:
                self.failure = Failure(exc.reason, exc.position, where)
        return self.failure

    def fail_input(self, reason: str, where: str | None = None) -> Failure:
        """A failure a reader found (a line that is not JSON, not UTF-8, …)."""
        if self.failure is None:
            self.failure = Failure(reason, None, where)
        return self.failure

    def result(self) -> VerifyResult:
        if self.failure is None:
            self._settle_beyond_end()
        return VerifyResult(self.frontier.size, self.frontier.root(), self.checkpoints,
                            self.latest_checkpoint, self.failure, tuple(self.notes))

    def _settle_beyond_end(self) -> None:
        """Checkpoints that sign more entries than the source holds (all pending ones now)."""
        n = self.frontier.size
        root = self.frontier.root()
        for size in sorted(self._pending):
            for signed_root, where, external in self._pending[size]:
                missing = (f"position {size} is" if size == n + 1
                           else f"positions {n + 1}..{size} are")
                if not external or self.beyond_end == "fail":
                    self.failure = Failure(
                        f"a checkpoint signs tree size {size}, but the log ends at {n} entries: "
                        f"{missing} missing (rows deleted, or the export was cut short)", n + 1,
                        where)
                    return
                proof = self.consistency_proofs.get((n, size))
                if proof is None:
                    self.notes.append(
                        f"{where}: signs tree size {size}, newer than this log of {n} entries; "
                        f"not checked against it (no consistency proof from {n} to {size}: "
                        f"`lookback audit consistency {n} {size}`)")
                elif verify_consistency(n, size, root, signed_root, proof):
                    self.notes.append(
                        f"{where}: signs tree size {size}; the consistency proof from {n} to "
                        f"{size} shows this log is its first {n} entries")
                else:
                    self.failure = Failure(
                        f"the consistency proof from tree size {n} (root {root.hex()}) to the "
                        f"checkpoint's tree size {size} (root {signed_root.hex()}) does not verify: "
                        "this log is not a prefix of the signed one (an entry was rewritten, or "
                        "the proof is wrong)", size, where)
                    return
        self._pending.clear()

    def _expect(self, position: int | None) -> None:
        """Positions are dense: 1, 2, 3, … with nothing missing, repeated or out of order."""
        expected = self.frontier.size + 1
        if position is None or position == expected:
            return
        if position > expected:
            raise Mismatch(f"position {expected} is missing here (the next entry is at {position}): "
                           "a ledger row was deleted, or entries are out of order", expected)
        raise Mismatch(f"an entry at position {position} where {expected} was expected (repeated "
                       "or out of order)", expected)

    def _fold(self, position: int, leaf: bytes) -> None:
        self.frontier.append(leaf)
        if self._pending:
            waiting = self._pending.pop(position, None)
            if waiting:
                root = self.frontier.root()
                for signed_root, signed_where, _ in waiting:
                    if signed_root != root:
                        raise Mismatch(
                            f"the tree of the first {position} entries has root {root.hex()}, but "
                            f"the checkpoint ({signed_where or 'es.checkpoints'}) signed "
                            f"{signed_root.hex()}: an earlier entry was rewritten consistently "
                            "(event, ledger and leaf) after it was signed", position)

    def _checkpoint(self, record: dict[str, Any], *, external: bool) -> None:
        size = record.get("tree_size") if type(record) is dict else None
        place = size if type(size) is int else None
        if record.keys() != CHECKPOINT_KEYS:
            raise Mismatch(f"a checkpoint record has exactly the keys "
                           f"{', '.join(sorted(CHECKPOINT_KEYS))}", place)
        label = f"checkpoint at tree size {size!r}"
        if type(record["note"]) is not str:
            raise Mismatch(f"{label}: the note is not a string", place)
        try:
            checkpoint = verify_note(record["note"], self.public_keys)
        except CheckpointError as exc:
            raise Mismatch(f"{label}: {exc}", place) from None
        if (checkpoint.tree_size != size or type(size) is not int
                or checkpoint.root_hash.hex() != record["root_hash"]
                or checkpoint.key_id != record["key_id"]
                or base64.b64encode(checkpoint.signature).decode() != record["signature"]):
            raise Mismatch(f"{label}: the record's tree_size, root_hash, key_id or signature differ "
                           "from its signed note", place)
        if self.frontier.size:
            raise Mismatch(f"{label}: every checkpoint record comes before the first entry (already "
                           f"{self.frontier.size} entries)", size)
        folder = (self._where or "").rpartition("/")[0]
        last = self._last_external.get(folder) if external else self._last_record_checkpoint
        if last is not None and size <= last:
            raise Mismatch(f"{label}: checkpoints are in ascending tree size, and this one follows "
                           f"the one at {last}", size)
        if external:
            self._last_external[folder] = size
        else:
            self._last_record_checkpoint = size
        if size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise Mismatch(f"{label}: the empty tree's root is SHA-256 of nothing", 0)
        self.checkpoints += 1
        self.latest_checkpoint = max(self.latest_checkpoint, size)
        if size > 0:
            self._pending.setdefault(size, []).append((checkpoint.root_hash, self._where, external))


def _position_of_any(record: Any) -> int | None:
    """The position a record names: an entry's ledger position, a checkpoint's tree size."""
    if type(record) is dict and record.get("kind") == "checkpoint":
        size = record.get("tree_size")
        return size if type(size) is int else None
    return position_of(record)


def verify_records(records: Iterable[Any], public_keys: Mapping[str, Ed25519PublicKey]
                   ) -> VerifyResult:
    """Verify a whole log given as records in export order (checkpoints first, then entries).

    The iterable may raise AuditFormatError, which is a failure like any other.
    """
    return verify_labelled(((None, record, None) for record in records), public_keys)


def verify_labelled(records: Iterable[tuple[str | None, Any, bytes | None]],
                    public_keys: Mapping[str, Ed25519PublicKey], *,
                    external: Iterable[tuple[str, dict[str, Any]]] = (),
                    consistency_proofs: Mapping[tuple[int, int], Sequence[bytes]] | None = None,
                    beyond_end: str = "report") -> VerifyResult:
    """Verify (where, record, raw line or None) triples; see `Verifier.feed`. `external`
    checkpoints (where, record) are fed first; see `Verifier.feed_external`."""
    verifier = Verifier(public_keys, consistency_proofs=consistency_proofs, beyond_end=beyond_end)
    if feed_externals(verifier, external):
        return verifier.result()
    try:
        for where, record, raw in records:
            if verifier.feed(record, where, raw) is not None:
                break
    except AuditFormatError as exc:
        verifier.fail_input(exc.reason, exc.where)
    return verifier.result()


def feed_externals(verifier: Verifier, external: Iterable[tuple[str, dict[str, Any]]]) -> bool:
    """Feed external checkpoints; True once one failed."""
    for where, record in external:
        if verifier.feed_external(where, record) is not None:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Checkpoints from outside the source (file copies carry the note alone)


def checkpoint_record_from_note(note: str) -> dict[str, Any]:
    """A checkpoint record built from a note alone (the file copies carry nothing else)."""
    try:
        checkpoint = parse_note(note)
    except CheckpointError:
        # Let the verifier report it, with the note as evidence.
        return {"kind": "checkpoint", "tree_size": None, "root_hash": "", "key_id": "",
                "signature": "", "note": note}
    return {"kind": "checkpoint", "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(), "key_id": checkpoint.key_id,
            "signature": base64.b64encode(checkpoint.signature).decode(), "note": note}
